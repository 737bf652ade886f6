#ifndef PIPEMSG_INTERNAL_H
#define PIPEMSG_INTERNAL_H

/* Cross-file internals of libpipemsg; not installed. */

#include <stddef.h>
#include <stdio.h>

#include <uv.h>

#include "pipemsg/message.h"
#include "pipemsg/pipe.h"

#if defined(__MINGW_PRINTF_FORMAT)
/* mingw-w64's stdio.h names the printf it maps to: gnu_printf under its ANSI stdio (which
 * _POSIX_C_SOURCE selects), where %zu and %lld work; plain printf would mean the MSVC one. */
#define PM__PRINTF(f, a) __attribute__((format(__MINGW_PRINTF_FORMAT, f, a)))
#elif defined(__GNUC__)
#define PM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PM__PRINTF(f, a)
#endif

/* All library allocation goes through these, so tests can fail the Nth allocation. */
void *pm__malloc(size_t n);
void *pm__calloc(size_t count, size_t n);
void *pm__realloc(void *p, size_t n);
char *pm__strdup(const char *s);
/* Copies s into buf (size > 0 bytes), cut to fit and always terminated: snprintf's "%s"
 * without the formatter, for per-call paths. */
void pm__copy_text(char *buf, size_t size, const char *s);
void pm__free(void *p);
/* Blocks from this size on are allocated by pm__malloc_big with a request for transparent
 * huge pages, made before the block is touched. */
#define PM__BIG_BLOCK ((size_t)4 << 20)
/* pm__malloc; a block of PM__BIG_BLOCK bytes or more asks for huge pages while pm_huge_pages
 * is on (Linux; a request only). Do not pm__realloc it: the request splits glibc's mapping,
 * which then cannot grow in place, and glibc copies the whole block (correct, only slow). */
void *pm__malloc_big(size_t n);
/* Test hook: the nth allocation from now (1-based) and all after it fail; 0 disables. */
void pm__alloc_fail_after(unsigned long n);

/* Writes a reason into why (PM_REASON_MAX bytes) when why is not NULL; returns err. */
int pm__reason(char *why, int err, const char *fmt, ...) PM__PRINTF(3, 4);

/* Library diagnostics: written to stderr only when $PIPEMSG_DEBUG is set. */
void pm__debug(const char *fmt, ...) PM__PRINTF(1, 2);

/* Bytes the reader has allocated for the payload (tests check lazy growth). */
struct pm_reader;
/* The payload length a frame header announces, 1 to max_message (the top bit clear): 0 with
 * *len, or PM_EMSGSIZE. The one rule pm_reader_feed and the command client's whole first read
 * both apply. */
int pm__frame_length(const uint8_t *header, size_t max_message,
                     size_t *len);
size_t pm__reader_capacity(const struct pm_reader *r);

/* Lets a frame's payload be read straight into the reader's buffer, not copied there from a
 * read buffer: 1 with the free part of that buffer (*room, *n bytes: never past the frame),
 * grown first as pm_reader_feed grows it for want more bytes; 0 when no payload is under way
 * (no whole header yet, or a frame complete), or a negative code (the reader fails as feed
 * does). The room is valid until the reader is next used. */
int pm__reader_room(struct pm_reader *r, size_t want, uint8_t **room, size_t *n);
/* n bytes (at most what pm__reader_room gave) were read into the room. */
void pm__reader_filled(struct pm_reader *r, size_t n);

/* The schema XSD text embedded at build time. */
extern const char pm__rpschema_xsd[];
extern const unsigned long pm__rpschema_xsd_len;

/* Encodes m (always freed) and writes it as one frame. Returns 1 if the whole frame was
 * written at once (cb is not called), 0 if it was queued (cb, which may be NULL, gets 0 or a
 * PM_E* code when the write finishes), or <0 (cb is not called). */
typedef void (*pm__sent_cb)(void *data, int status);
int pm__stream_send(uv_stream_t *stream, pm_msg *m, pm_encoding enc, size_t max_message,
                    pm__sent_cb cb, void *data);
/* Writes the rest of a frame whose first done bytes (header included) are already written:
 * header and payload (len bytes, taken and freed in every case) through the loop, with
 * pm__stream_send's results (never 1). */
int pm__stream_send_rest(uv_stream_t *stream, const uint8_t *header, uint8_t *payload,
                         size_t len, size_t done, pm__sent_cb cb, void *data);
/* Writes a whole frame already made (header included) as pm__stream_send does; frame is
 * borrowed: what cannot be written at once is copied. Same results as pm__stream_send. */
int pm__stream_send_bytes(uv_stream_t *stream, const uint8_t *frame, size_t len, pm__sent_cb cb,
                          void *data);
/* Feeds len bytes to r and hands each decoded message (freed after the call) to cb, which
 * returns 0 to go on. Returns 0 when all bytes were taken, 1 when cb stopped early, or a
 * negative code (bad frame or message; why says what) with the rest unread. raw, unless NULL,
 * sees each payload first: it returns -1 to have it decoded and handed to cb, or what cb
 * would have returned for a message it handled itself. */
struct pm_reader;
typedef int (*pm__message_cb)(void *data, const pm_msg *m);
typedef int (*pm__payload_cb)(void *data, const uint8_t *payload, size_t len);
int pm__feed_messages(struct pm_reader *r, const void *buf, size_t len, pm__message_cb cb,
                      pm__payload_cb raw, void *data, char *why);

/* {"EventConfirmation":{"Id":id}} as pm_json_encode writes it, without the tree: its length
 * (tests/unit/test_codec_json.c compares the bytes). */
#define PM__JSON_CONFIRMATION_MAX 64
size_t pm__json_confirmation(int64_t id, char out[PM__JSON_CONFIRMATION_MAX]);
/* 1 and *id when p is exactly what pm__json_confirmation writes for a non-negative id, else 0:
 * then p is the full decoder's to judge (it may still be a valid confirmation). */
int pm__json_confirmation_id(const uint8_t *p, size_t len, int64_t *id);
/* The same for {"Handshake":{"Seq":seq}}, a heartbeat and its answer. */
size_t pm__json_heartbeat(int64_t seq, char out[PM__JSON_CONFIRMATION_MAX]);
int pm__json_heartbeat_seq(const uint8_t *p, size_t len, int64_t *seq);

/* An Event read without pm_json_decode: its Id, Type and Time, and its Data (NULL without one;
 * the caller's reference). */
#define PM__JSON_EVENT_TYPE_MAX 64
typedef struct pm__event_view {
  int64_t id;
  char type[PM__JSON_EVENT_TYPE_MAX + 1];
  char time[PM_TIME_MAX];
  json_t *data;
} pm__event_view;
/* 1 with *ev when p is an Event exactly as the event server writes it in JSON:
 * {"Event":{"Id":N,"Type":"...","Time":"..."}} or with ,"Data":{...} after the Time, compact,
 * the Id canonical digits within int64, Type (shorter than PM__JSON_EVENT_TYPE_MAX) and Time
 * plain ASCII without escapes, and pm_json_decode would accept p as the same event; else 0:
 * then p is the full decoder's to judge (it may still be a valid Event). */
int pm__json_event(const uint8_t *p, size_t len, pm__event_view *ev);

/* Part of an encoded message: bytes of the encoder's buffer, or of a string in the tree. */
typedef struct pm__piece {
  const uint8_t *p;
  size_t len;
} pm__piece;
/* The shortest run of a string's bytes pm__json_encode_pieces leaves in the tree. */
#define PM__JSON_LEND_MIN ((size_t)64 * 1024)
/* pm_json_encode's bytes, the same ones, as *n pieces (a new array, pm__free) in order, *len
 * bytes in all: runs of PM__JSON_LEND_MIN or more bytes a string holds as they are point into
 * m's tree (m must outlive the pieces and stay unchanged), the rest into *buf (pm__free). A big
 * string is then written from the tree, not copied into a frame first. Same errors. */
int pm__json_encode_pieces(const pm_msg *m, uint8_t **buf, pm__piece **pieces, size_t *n,
                           size_t *len);
/* pm__json_encode_pieces for either encoding: XML comes as one piece (*buf). */
int pm__msg_encode_pieces(const pm_msg *m, pm_encoding enc, uint8_t **buf, pm__piece **pieces,
                          size_t *n, size_t *len);

/* The compact JSON text of v, a value standing at depth (> 0) in a message, as pm_json_encode
 * writes it inside one: in a new buffer (*out, pm__free) after `room` bytes left for the
 * caller, followed by a NUL; *len is the text's length, and *nodes (may be NULL) v's nodes as
 * pm__tree_nodes counts them for JSON, less its message wrapper's 2. v is checked first as
 * pm__tree_check_at(v, depth) checks it (it bounds the depth, and its member names are names,
 * written without a scan for escapes), in the walk that measures it.
 * 0, the check's PM_EINVAL or PM_EDEPTH, PM_EINVAL (a string that is not UTF-8) or PM_ENOMEM. */
int pm__json_value_text(const json_t *v, int depth, size_t room, uint8_t **out, size_t *len,
                        size_t *nodes);

/* Test hooks: see every peer the command (event) server accepts before anything else does, so
 * a test can give its connections uids of its choosing. NULL (the default): none. */
typedef void (*pm__peer_hook)(pm_peer *peer, void *data);
void pm__command_peer_hook(pm__peer_hook hook, void *data);
void pm__event_peer_hook(pm__peer_hook hook, void *data);

/* Applies a default to an option left at 0. */
#define PM__DEFAULT(field, value)                                                              \
  do {                                                                                         \
    if ((field) == 0)                                                                          \
      (field) = (value);                                                                       \
  } while (0)

/* A loop the application runs one pass at a time (pm_client_process) must know whether a pass
 * ran callbacks: what they started is handed to the kernel's poller only in the next pass, so
 * the caller runs passes until one runs none. Such a loop's data points to an unsigned counter
 * that every client-side libuv callback bumps; other loops leave data NULL. */
#define PM__LOOP_ACTIVITY(loop)                                                                \
  do {                                                                                         \
    if ((loop)->data != NULL)                                                                  \
      ++*(unsigned *)(loop)->data;                                                             \
  } while (0)

/* Maps a libuv status to a PM_E* code (the same on every platform: libuv's codes are). */
int pm__uv_error(int status);

/* libuv allocation callback for socket reads (buffers freed with pm__free). */
void pm__read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* The same buffer for a loop's reads one after another (the event server's sessions, the event
 * client): pm__read_take hands out *kept (or a new buffer) and pm__read_give keeps base for
 * the next read (or frees it when one is kept already; base may be NULL). Each read otherwise
 * costs a 64 KiB malloc and free, and malloc consolidates its fast bins for every allocation
 * that big. The owner frees *kept at the end. */
void pm__read_take(char **kept, uv_buf_t *buf);
void pm__read_give(char **kept, char *base);

/* A lingering close, for a connection answered before its request was read (a refusal, an
 * oversized frame): a client that writes its request before it reads would otherwise fail on
 * its write and never see the answer. After the answer is written, the write side is shut
 * down and what the peer still sends is read and discarded until it closes, timeout_ms pass
 * or budget bytes were discarded; then cb runs and the owner closes the handles. */
#define PM__LINGER_MAX_BYTES (1024u * 1024u)
typedef void (*pm__linger_cb)(void *data);
typedef struct pm__linger {
  uv_shutdown_t shutdown;
  uv_stream_t *stream;
  uv_timer_t *timer;
  size_t budget;
  pm__linger_cb cb;
  void *data;
  int active;
} pm__linger;
/* Takes over stream and timer (their data pointers too, given back as data before cb runs).
 * cb may run before this returns. */
void pm__linger_start(pm__linger *l, uv_stream_t *stream, uv_timer_t *timer, uint64_t timeout_ms,
                      size_t budget, pm__linger_cb cb, void *data);
/* Ends a lingering close now without calling cb (the owner is closing anyway); no-op if l is
 * not lingering (a zeroed pm__linger is not). */
void pm__linger_stop(pm__linger *l);
int pm__lingering(const pm__linger *l);

#endif
