#ifndef PIPEMSGD_UTF8_H
#define PIPEMSGD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if there is none. As strict
 * as jansson (no overlongs, surrogates or code points past U+10FFFF), so text that passes can
 * go into a JSON message. */
size_t utf8_len(const unsigned char *s, size_t n);
/* As utf8_len, with the sequence's code point in *cp. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether cp, past ASCII, changes how text reads without being seen (C1 controls, invisible
 * format characters), so that text shown to a person must escape it. */
int utf8_invisible(uint32_t cp);

/* Writes in (n bytes, any bytes) escaped into out (size > 0), NUL-terminated: control bytes
 * (C0, DEL, C1), the invisible characters above, invalid UTF-8 and the backslash become \xNN
 * per byte (\\ for the backslash); the rest, valid UTF-8 such as "café", is copied. Stops
 * before a character or escape that would not fit; returns the length written and puts the
 * input bytes taken in *used, so a caller can go on from there. pipemsgd's log and the text
 * pipemsg prints from a service both go through here. */
size_t utf8_escape(const char *in, size_t n, char *out, size_t size, size_t *used);

#endif
