#include "utf8.h"

#include <stdio.h>
#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  size_t len;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    *cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    *cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    *cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    *cp = (*cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && *cp < 0x800) || (len == 4 && *cp < 0x10000) || *cp > 0x10ffff ||
      (*cp >= 0xd800 && *cp <= 0xdfff))
    return 0;
  return len;
}

size_t utf8_len(const unsigned char *s, size_t n) {
  uint32_t cp;
  return utf8_decode(s, n, &cp);
}

/* C1 controls are as dangerous to a terminal as C0 ones; the invisible format characters
 * (bidirectional overrides and isolates, which can make text display backwards, zero-width
 * ones, line and paragraph separators, the BOM) change how a line reads. */
int utf8_invisible(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0xad || cp == 0x61c || cp == 0x180e ||
         (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb);
}

/* The length of a valid UTF-8 sequence at s that is printed as it is; 0 to escape it. */
static size_t printable_utf8_len(const unsigned char *s, size_t n) {
  uint32_t cp;
  size_t len = utf8_decode(s, n, &cp);
  if (len < 2)
    return len;
  return utf8_invisible(cp) ? 0 : len;
}

size_t utf8_escape(const char *in, size_t n, char *out, size_t size, size_t *used) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0, o = 0;
  while (i < n) {
    size_t u;
    char esc[5];
    size_t elen;
    /* Most of a line is printable ASCII, taken as it is without the UTF-8 decoder. */
    if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
      if (o + 1 >= size)
        break;
      out[o++] = (char)s[i++];
      continue;
    }
    u = printable_utf8_len(s + i, n - i);
    if (u > 1) {
      if (o + u >= size)
        break;
      memcpy(out + o, s + i, u);
      o += u;
      i += u;
      continue;
    }
    if (s[i] == '\\')
      elen = (size_t)snprintf(esc, sizeof(esc), "\\\\");
    else
      elen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
    if (o + elen >= size)
      break;
    memcpy(out + o, esc, elen);
    o += elen;
    i++;
  }
  out[o] = '\0';
  *used = i;
  return o;
}
