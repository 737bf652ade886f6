#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"

int pm_detect_encoding(const void *buf, size_t len, pm_encoding *out) {
  const uint8_t *p = buf;
  size_t i = 0;
  if ((buf == NULL && len > 0) || out == NULL)
    return PM_EINVAL;
  if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
    i = 3;
  while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
    i++;
  if (i == len)
    return PM_EENCODING;
  if (p[i] == '{') {
    *out = PM_ENC_JSON;
    return 0;
  }
  if (p[i] == '<') {
    *out = PM_ENC_XML;
    return 0;
  }
  return PM_EENCODING;
}

int pm_msg_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  pm_encoding enc;
  int rc = pm_detect_encoding(buf, len, &enc);
  if (rc == PM_EENCODING)
    return pm__reason(why, rc, "payload is neither JSON nor XML");
  if (rc < 0)
    return pm__reason(why, rc, "%s", pm_strerror(rc));
  return enc == PM_ENC_JSON ? pm_json_decode(buf, len, out, why)
                            : pm_xml_decode(buf, len, out, why);
}

int pm_msg_encode(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len) {
  switch (enc) {
  case PM_ENC_JSON:
    return pm_json_encode(m, out, len);
  case PM_ENC_XML:
    return pm_xml_encode(m, out, len);
  }
  return PM_EINVAL;
}

int pm__msg_encode_pieces(const pm_msg *m, pm_encoding enc, uint8_t **buf, pm__piece **pieces,
                          size_t *n, size_t *len) {
  pm__piece *pc;
  int rc;
  if (enc == PM_ENC_JSON)
    return pm__json_encode_pieces(m, buf, pieces, n, len);
  if (buf == NULL || pieces == NULL || n == NULL || len == NULL)
    return PM_EINVAL;
  rc = pm_msg_encode(m, enc, buf, len);
  if (rc < 0)
    return rc;
  pc = pm__malloc(sizeof(*pc));
  if (pc == NULL) {
    pm__free(*buf);
    return PM_ENOMEM;
  }
  pc->p = *buf;
  pc->len = *len;
  *pieces = pc;
  *n = 1;
  return 0;
}
