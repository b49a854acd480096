/* UTF-8 validation and JSON string escaping, shared by every JSON writer.
 * Rule (documented in docs/formats.md): `"` and `\` are escaped; control characters U+0000..U+001F
 * become \b \f \n \r \t or \u00XX; U+2028/U+2029 become \u2028/\u2029 (safe inside <script>);
 * each maximal invalid UTF-8 subsequence (stray continuation bytes, overlong forms, surrogates,
 * code points above U+10FFFF, truncated sequences) becomes one U+FFFD. Output is valid UTF-8.
 * Pure functions, thread-safe. */
#ifndef DG_UTF8_H
#define DG_UTF8_H

#include <stddef.h>

/* Writes the escaped form of s (without quotes) to out, which must have room for
 * dg_utf8_json_escaped_len(s, len) bytes (6 * len always suffices). Returns bytes written. */
size_t dg_utf8_json_escape(char *out, const char *s, size_t len);
/* Exact number of bytes dg_utf8_json_escape would write. */
size_t dg_utf8_json_escaped_len(const char *s, size_t len);
/* Length of the valid UTF-8 sequence starting at s[0] (1..4), or 0 when s[0..] is invalid;
 * in that case *out_skip (if not NULL) receives the length of the maximal invalid subpart. */
size_t dg_utf8_seq_len(const unsigned char *s, size_t len, size_t *out_skip);
/* 1 when the whole of s is valid UTF-8. */
int dg_utf8_valid(const char *s, size_t len);

#endif
