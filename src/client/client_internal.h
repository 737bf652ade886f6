#ifndef PIPEMSG_CLIENT_INTERNAL_H
#define PIPEMSG_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "pipemsg/client.h"

/* The tables scripts/contract.py generates (client_commands.c) for the typed API: where each
 * field of a Params, Data or event struct lives, and how it is carried in JSON. */
typedef enum {
  PM__CL_STRING, /* char * (const char * in Params) */
  PM__CL_BOOL,   /* bool */
  PM__CL_INT,    /* int64_t */
  PM__CL_ENUM,   /* an enum: 0 unknown, else 1 + the index in values */
  PM__CL_JSON,   /* char *: any JSON value as text */
  PM__CL_LIST,   /* items and a size_t count at count_offset */
  PM__CL_OBJECT  /* an embedded struct of type */
} pm__cl_kind;

typedef struct pm__cl_type pm__cl_type;
typedef struct pm__cl_field {
  const char *name;
  pm__cl_kind kind;
  size_t offset;
  bool optional;       /* a bool at has_offset says whether it is set */
  size_t has_offset;
  size_t count_offset; /* PM__CL_LIST */
  pm__cl_kind item;    /* PM__CL_LIST: PM__CL_STRING or PM__CL_OBJECT */
  size_t item_size;
  const pm__cl_type *type; /* PM__CL_OBJECT, or a list of them */
  const char *const *values; /* PM__CL_ENUM */
  size_t n_values;
} pm__cl_field;

struct pm__cl_type {
  size_t size;
  const pm__cl_field *fields;
  size_t n_fields;
};

/* Any callback type, stored and cast back to its own type by the command's deliver function. */
typedef void (*pm__client_fn)(void);
typedef void (*pm__client_deliver)(pm_client *client, const pm_result *result, void *answer,
                                   pm__client_fn fn, void *data);

typedef struct pm__cl_command {
  const char *name;
  const pm__cl_type *params; /* NULL: none */
  const pm__cl_type *data;   /* NULL: no Data */
  pm__client_deliver deliver;
} pm__cl_command;

typedef struct pm__cl_event {
  const char *type;
  pm_client_event_type tag;
  const pm__cl_type *data;
} pm__cl_event;

extern const pm__cl_event pm__client_events[];
extern const size_t pm__client_n_events;

const char *pm__client_enum_name(const char *const *values, size_t n, int value);
pm_result pm__client_typed_call(pm_client *client, const pm__cl_command *cmd, const void *params,
                                void *answer);
int pm__client_typed_async(pm_client *client, const pm__cl_command *cmd, const void *params,
                           pm__client_fn cb, void *data);

/* client_typed.c: between the structs and JSON trees. */
/* A Params object from a struct (NULL: every field unset); *out NULL when nothing is set. */
int pm__client_encode(const pm__cl_type *t, const void *obj, json_t **out, char *why);
/* Fills obj (zeroed first) from a Data object; on failure obj is freed and zeroed again. */
int pm__client_decode(const pm__cl_type *t, const json_t *json, void *obj, char *why);
void pm__client_typed_free(const pm__cl_type *t, void *obj);

/* client_unix.c / client_win.c. */
/* The expect_owner text (pm_client_config) as a uid and SID for pm_client_options: sid gets
 * a SID string or "". PM_EINVAL for a user that does not exist. */
int pm__client_owner(const char *spec, long long *uid, char *sid, size_t sid_size);
/* What lets the application run the client's loop (PM_CLIENT_DRIVE_APP). Every function
 * accepts NULL (no driver: the library's thread runs the loop). */
typedef struct pm__client_driver pm__client_driver;
int pm__client_driver_new(uv_loop_t *loop, pm__client_driver **out);
void pm__client_driver_free(pm__client_driver *d);
/* pm_client_fd(): what the application polls for reading. */
intptr_t pm__client_driver_handle(const pm__client_driver *d);
/* Around the application's passes over the loop, on its thread. */
void pm__client_driver_enter(pm__client_driver *d);
void pm__client_driver_leave(pm__client_driver *d);
/* Before the loop is closed: nothing of the driver's watches it any more. */
void pm__client_driver_stop(pm__client_driver *d);
/* Detaches the calling thread (made by uv_thread_create): nobody will join it. */
void pm__client_thread_detach(void);

#endif
