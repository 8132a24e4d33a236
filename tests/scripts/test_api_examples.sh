#!/bin/sh
# test_api_examples.sh - the C fragments of docs/api.md compile as printed:
# every ```c block, in order, becomes one function body (the fragments
# build on each other: cfg, kv, hashes), given the inputs the text leaves
# to the reader as parameters, with the installed-style include (<kv.h>)
# and -Wall -Werror; the object is linked against libkv.so, so every
# function named there is an exported symbol.
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 60
set -u

src=${KV_SRC:-.}
build=${KV_BUILD:-build}
doc=$src/docs/api.md
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: no C compiler ($cc)"; exit 77; }
[ -f "$doc" ] || { echo "FAIL: $doc not found"; exit 1; }
[ -e "$build/libkv.so.0" ] || { echo "FAIL: $build/libkv.so.0 is not built"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

n=$(grep -c '^```c$' "$doc")
[ "$n" -gt 0 ] || { echo "FAIL: no \`\`\`c blocks in $doc"; exit 1; }
{
	cat <<'PRE'
#include <kv.h>
/* The inputs docs/api.md's fragments take as given. */
int api_examples(const void *ns, size_t ns_len, const uint32_t *tokens, size_t ntokens,
		 kv_hash *hashes, const uint32_t *engine_blocks, uint64_t user_data);
int api_examples(const void *ns, size_t ns_len, const uint32_t *tokens, size_t ntokens,
		 kv_hash *hashes, const uint32_t *engine_blocks, uint64_t user_data)
{
PRE
	# Each fragment keeps its docs/api.md line numbers for the diagnostics.
	awk -v doc="$doc" '
		/^```c$/ { f = 1; printf "#line %d \"%s\"\n", NR + 1, doc; next }
		/^```/ { f = 0; next }
		f { print }' "$doc"
	cat <<'POST'
	(void)ret; (void)got;
	return 0;
}
int main(void) { return 0; }
POST
} >"$tmp/examples.c"

if ! "$cc" -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-variable \
	-I"$src/libkv/include" -c "$tmp/examples.c" -o "$tmp/examples.o" 2>"$tmp/err"; then
	echo "FAIL: docs/api.md's examples do not compile:"
	sed 's/^/    /' "$tmp/err"
	exit 1
fi
if ! "$cc" -o "$tmp/examples" "$tmp/examples.o" "$build/libkv.so.0" 2>"$tmp/err"; then
	echo "FAIL: docs/api.md's examples do not link against libkv.so:"
	sed 's/^/    /' "$tmp/err"
	exit 1
fi
echo "ok: $n C blocks of docs/api.md compile and link"
exit 0
