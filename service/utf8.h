#ifndef PIPEMSGD_UTF8_H
#define PIPEMSGD_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if there is none. As strict
 * as jansson (no overlongs, surrogates or code points past U+10FFFF), so text that passes can
 * go into a JSON message. */
size_t utf8_len(const unsigned char *s, size_t n);

#endif
