#ifndef PIPEMSG_JSON_PARSE_H
#define PIPEMSG_JSON_PARSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The deepest value the parser builds, counted as jansson counts it (the root value is 1, and
 * every value inside an array or object one more than that container): jansson's
 * JSON_PARSER_MAX_DEPTH, so deeper input is PM_EDEPTH exactly where json_loadb says so. */
#define PM_JSON_PARSE_DEPTH_MAX 2048

/* Parses len bytes of JSON into a jansson tree, accepting exactly what
 * json_loadb(p, len, JSON_REJECT_DUPLICATES, ...) accepts (but for a raw NUL byte after a
 * number or a word, which jansson drops and this refuses) and building the same tree: an
 * object or array at the top, nothing but white space after it, strictly valid UTF-8 (no
 * overlong forms, no encoded surrogates, nothing above U+10FFFF) everywhere, escapes as RFC 8259
 * with paired surrogates only, no \u0000, no duplicate member names, integers within int64,
 * finite reals. It is faster than jansson's byte-at-a-time lexer and copies each string once,
 * from p into its value.
 * Returns 0 with *out; PM_EPARSE, PM_EDEPTH (where json_loadb reports its stack overflow) or
 * PM_ENOMEM, with a reason (line and column included) in why when it is not NULL. */
int pm__json_parse(const uint8_t *p, size_t len, json_t **out, char *why);

/* The same parse of a value standing at depth (pm__tree_check_at's depths) that also applies
 * the model's rules while it builds the tree, where pm__tree_check_at would walk it again:
 * every member name a name, nothing deeper than PM_NESTING_MAX (a string with a NUL the
 * parser refuses already). 0 exactly when pm__json_parse gives 0 and pm__tree_check_at(*out,
 * depth) then would; else an error (which one, when several apply, is not said). */
int pm__json_parse_at(const uint8_t *p, size_t len, int depth, json_t **out);

/* A message, {"Kind":{fields}}, the common way, without the general parse's outer object:
 * 1 with *kind (its kind_len bytes in p) and *fields (the caller's) when p is one that
 * pm__json_parse accepts, its kind is a name written without escapes, and its fields pass
 * pm__tree_check (the parser lets no NUL into a string or a name, and checks the names and the
 * depth here as it goes). 0 for anything else, valid or not, and nothing is kept: the caller
 * then parses p the general way, for its verdict. */
int pm__json_parse_message(const uint8_t *p, size_t len, const char **kind, size_t *kind_len,
                           json_t **fields);

/* Shared with the encoder (codec_json.c). */

/* The end of the run from q of bytes a JSON string holds as they are: 0x20 to 0x7F but '"'
 * and '\\'. */
const uint8_t *pm__json_plain_end(const uint8_t *q, const uint8_t *end);

/* The length (2 to 4) of the valid UTF-8 sequence at q, or 0: no continuation byte or 0xC0,
 * 0xC1, 0xF5 and above to start with, no overlong form, no surrogate, nothing above U+10FFFF,
 * nothing cut short by end. For bytes of 0x80 and above; jansson's rules (utf.c). */
size_t pm__utf8_seq(const uint8_t *q, const uint8_t *end);

#endif
