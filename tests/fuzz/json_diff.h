#ifndef PM_JSON_DIFF_H
#define PM_JSON_DIFF_H

/* The differential check of the JSON parser (src/core/json_parse.c) against jansson, shared by
 * the fuzz target fuzz_json_diff and the unit test test_json_parse. */
#include <stddef.h>
#include <stdint.h>

/* Runs p..len through pm__json_parse and through json_loadb(JSON_REJECT_DUPLICATES) and
 * compares: the same verdict (PM_EPARSE, PM_EDEPTH from jansson's stack overflow), and on
 * success the same tree, member order included. An input holding a raw NUL byte must be
 * rejected, whatever jansson says (it drops one after a number or a word). What the message
 * fast path (pm__json_parse_message) takes, the general parse must take as the same message.
 * If pm_json_decode then accepts the input as a message, pm_json_encode must write what
 * jansson's dump writes. Returns NULL when all agree,
 * else what differs (a static string). */
const char *json_diff(const uint8_t *p, size_t len);

#endif
