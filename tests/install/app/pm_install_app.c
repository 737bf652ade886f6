/* A program built from an install of pipemsg (tests/install/check_install.sh): the umbrella
 * header, then a frame through the encoder and the decoder, and an error's text. Needs no
 * service. */
#include <pipemsg/pipemsg.h>

#include <stdio.h>
#include <string.h>

int main(void) {
  static const char payload[] = "{}";
  uint8_t frame[PM_FRAME_HEADER_SIZE + sizeof(payload) - 1];
  pm_reader *reader;
  uint8_t *out = NULL;
  size_t len = 0;
  int rc;

  if (pm_frame_header(sizeof(payload) - 1, 0, frame) != 0)
    return 1;
  memcpy(frame + PM_FRAME_HEADER_SIZE, payload, sizeof(payload) - 1);
  if (pm_reader_new(0, &reader) != 0)
    return 1;
  rc = pm_reader_feed(reader, frame, sizeof(frame)) == (long)sizeof(frame) &&
       pm_reader_next(reader, &out, &len) == 1 && len == sizeof(payload) - 1 &&
       memcmp(out, payload, len) == 0;
  pm_free(out);
  pm_reader_free(reader);
  if (!rc)
    return 1;
  printf("pipemsg: frame ok; %s\n", pm_strerror(PM_EMSGSIZE));
  return 0;
}
