#include <string.h>

#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Bytes read from the socket at a time; the frame reader owns the growing payload buffer. */
#define READ_CHUNK (64 * 1024)
#define MS_NS 1000000ull

int pm_request_new(const char *command, int64_t id, json_t *params, pm_msg **out) {
  pm_msg *m = NULL;
  int rc;
  if (command == NULL || command[0] == '\0' || out == NULL) {
    rc = PM_EINVAL;
    goto fail;
  }
  rc = pm_msg_new(PM_KIND_REQUEST, &m);
  if (rc == 0)
    rc = pm_msg_set_string(m, "Command", command);
  if (rc == 0 && id > 0)
    rc = pm_msg_set_int(m, "Id", id);
  if (rc == 0 && params != NULL) {
    rc = pm_msg_set_tree(m, "Params", params);
    params = NULL;
  }
  if (rc < 0)
    goto fail;
  *out = m;
  return 0;
fail:
  json_decref(params);
  pm_msg_free(m);
  return rc;
}

/* Writes the request and reads one frame, both under the response deadline. Reading goes on
 * while writing: a service may answer before it has read everything (an oversized request gets
 * BadRequest unread), and then a failed write is not the end of the call. */
static int exchange(pm__conn *conn, const uint8_t *header, const uint8_t *payload, size_t len,
                    pm_reader *reader, uint64_t deadline, uint8_t **frame, size_t *frame_len) {
  size_t sent = 0, total = PM_FRAME_HEADER_SIZE + len;
  int writing = 1;
  uint8_t *buf = pm__malloc(READ_CHUNK);
  int rc = buf == NULL ? PM_ENOMEM : 0;
  while (rc == 0) {
    int ready = pm__conn_wait(conn, writing, deadline);
    if (ready < 0) {
      rc = ready;
      break;
    }
    if (ready == 0) {
      rc = PM_ETIMEDOUT;
      break;
    }
    if (ready & 2) {
      long n = sent < PM_FRAME_HEADER_SIZE
                   ? pm__conn_send(conn, header + sent, PM_FRAME_HEADER_SIZE - sent, payload, len)
                   : pm__conn_send(conn, NULL, 0, payload + (sent - PM_FRAME_HEADER_SIZE),
                                 total - sent);
      if (n < 0)
        writing = 0;
      else
        sent += (size_t)n;
      if (sent == total)
        writing = 0;
    }
    if (ready & 1) {
      long n = pm__conn_recv(conn, buf, READ_CHUNK);
      const uint8_t *p = buf;
      if (n == PM_EBUSY)
        continue;
      if (n <= 0) {
        rc = n == 0 ? PM_EEOF : PM_EIO;
        break;
      }
      while (n > 0 && rc == 0) {
        long used = pm_reader_feed(reader, p, (size_t)n);
        if (used < 0) {
          rc = (int)used;
          break;
        }
        p += used;
        n -= used;
        rc = pm_reader_next(reader, frame, frame_len);
        if (rc == 1)
          goto done;
      }
    }
  }
done:
  pm__free(buf);
  return rc == 1 ? 0 : rc;
}

int pm_command_client_call(const char *name, const pm_client_options *opts,
                           const pm_msg *request, pm_encoding enc, pm_msg **response) {
  pm_client_options o;
  char path[PM_PIPE_PATH_MAX + 1];
  uint8_t header[PM_FRAME_HEADER_SIZE], *payload = NULL, *frame = NULL;
  size_t len = 0, frame_len = 0;
  pm_reader *reader = NULL;
  pm_msg *resp = NULL;
  uint64_t start = uv_hrtime();
  pm__conn *conn = NULL;
  pm__owner owner;
  int rc;
  if (request == NULL || response == NULL)
    return PM_EINVAL;
  if (name == NULL)
    name = pm_pipe_default(PM_PIPE_COMMAND);
  memset(&o, 0, sizeof(o));
  if (opts != NULL)
    o = *opts;
  PM__DEFAULT(o.connect_timeout_ms, PM_CONNECT_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(o.response_timeout_ms, PM_RESPONSE_TIMEOUT_MS_DEFAULT);
  rc = pm_pipe_path(name, path, sizeof(path));
  if (rc == 0)
    rc = pm_reader_new(o.max_message, &reader);
  if (rc == 0)
    rc = pm_msg_encode(request, enc, &payload, &len);
  if (rc == 0)
    rc = pm_frame_header(len, o.max_message, header);
  if (rc == 0)
    rc = pm__dial(path, start + o.connect_timeout_ms * MS_NS, &conn);
  /* Never hand a request to an impostor squatting on the pipe name. */
  owner.uid = o.expect_owner_uid;
  owner.sid = o.expect_owner_sid;
  if (rc == 0)
    rc = pm__conn_check_owner(conn, &owner);
  if (rc == 0)
    rc = exchange(conn, header, payload, len, reader, uv_hrtime() + o.response_timeout_ms * MS_NS,
                  &frame, &frame_len);
  if (rc == 0)
    rc = pm_msg_decode(frame, frame_len, &resp, NULL);
  if (rc == 0 && strcmp(pm_msg_kind(resp), PM_KIND_RESPONSE) != 0)
    rc = PM_EPROTO;
  pm__conn_close(conn);
  pm__free(frame);
  pm__free(payload);
  pm_reader_free(reader);
  if (rc < 0) {
    pm_msg_free(resp);
    return rc;
  }
  *response = resp;
  return 0;
}

const char *pm_client_result(int err) {
  switch (err) {
  case PM_ECONNTIMEOUT:
    return PM_RESULT_CONNECTION_TIMEOUT;
  case PM_ETIMEDOUT:
    return PM_RESULT_TIMEOUT;
  case PM_ENOTAUTH:
    return PM_RESULT_NOT_AUTHORIZED;
  default:
    return PM_RESULT_TRANSPORT_ERROR;
  }
}
