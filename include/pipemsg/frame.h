#ifndef PIPEMSG_FRAME_H
#define PIPEMSG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frame: 4-byte big-endian length, then `length` payload bytes (PROTOCOL §2). */
#define PM_FRAME_HEADER_SIZE 4
#define PM_MAX_MESSAGE_DEFAULT ((size_t)16 * 1024 * 1024)
#define PM_MAX_MESSAGE_CEILING ((size_t)0x7fffffff)

/* Incremental, I/O-free frame decoder. Feed it bytes as they arrive; it hands out one
 * complete payload at a time. An announced length of 0, with the top bit set, or above
 * max_message is rejected from the 4 header bytes alone, before any payload buffer exists,
 * and the payload buffer grows only as bytes arrive. Errors are sticky. */
typedef struct pm_reader pm_reader;

/* max_message: 0 means PM_MAX_MESSAGE_DEFAULT; above PM_MAX_MESSAGE_CEILING is PM_EINVAL. */
int pm_reader_new(size_t max_message, pm_reader **out);
void pm_reader_free(pm_reader *r);

/* Consumes bytes up to the end of the current frame and returns how many it took (>= 0), or a
 * negative code (PM_EMSGSIZE, PM_ENOMEM, or the sticky error). When a frame completes it stops
 * there: take the frame with pm_reader_next() and feed the rest again. */
long pm_reader_feed(pm_reader *r, const void *data, size_t len);

/* 1 and the payload (caller frees with pm_free) if a frame is complete; 0 if not; <0 if the
 * reader has failed. */
int pm_reader_next(pm_reader *r, uint8_t **payload, size_t *len);

/* Bytes of the frame being assembled, header included (0 between frames). */
size_t pm_reader_pending(const pm_reader *r);

/* Writes the 4-byte header for a payload of len bytes; PM_EMSGSIZE if len is 0 or above
 * max_message (0 means the default). */
int pm_frame_header(size_t len, size_t max_message, uint8_t out[PM_FRAME_HEADER_SIZE]);

/* Frees a buffer returned by pipemsg (payloads, encoded messages). Accepts NULL. */
void pm_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
