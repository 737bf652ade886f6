#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "corpus_check.h"

#define CORPUS_DIR PM_SOURCE_DIR "/tests/fuzz/corpus"
#define CORPUS_FILE_MAX (1024 * 1024)
#define CORPUS_MAX 64
/* Room an input may grow by its edits. */
#define EDIT_ROOM 64
/* Only inputs up to this size are edited: the node-budget seeds (40 KiB and more) would take
 * most of the time and exercise nothing the small ones do not. */
#define SMALL_INPUT 4096

typedef struct corpus {
  uint8_t *data[CORPUS_MAX];
  size_t len[CORPUS_MAX];
  int n;
} corpus;

static void load_dir(corpus *c, const char *dir, pm_test_diff_check *check) {
  char where[512];
  DIR *d;
  struct dirent *e;
  snprintf(where, sizeof(where), "%s/%s", CORPUS_DIR, dir);
  d = opendir(where);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL && c->n < CORPUS_MAX) {
    char path[1024];
    FILE *f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", where, e->d_name);
    f = fopen(path, "rb");
    assert_non_null(f);
    c->data[c->n] = malloc(CORPUS_FILE_MAX);
    assert_non_null(c->data[c->n]);
    c->len[c->n] = fread(c->data[c->n], 1, CORPUS_FILE_MAX, f);
    fclose(f);
    check(c->data[c->n], c->len[c->n], e->d_name);
    c->n++;
  }
  closedir(d);
}

static uint64_t rnd(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static size_t edit(uint64_t *rng, uint8_t *out, size_t cap, const uint8_t *in, size_t len,
                   const char *const *tokens, size_t ntokens) {
  size_t n = len < cap ? len : cap;
  int edits = 1 + (int)(rnd(rng) % 4);
  memcpy(out, in, n);
  for (int i = 0; i < edits; i++) {
    size_t at = n ? (size_t)(rnd(rng) % (n + 1)) : 0;
    switch (rnd(rng) % 3) {
    case 0:
      if (at < n)
        out[at] = (uint8_t)rnd(rng);
      break;
    case 1: {
      const char *t = tokens[rnd(rng) % ntokens];
      size_t tl = strlen(t);
      if (n + tl <= cap) {
        memmove(out + at + tl, out + at, n - at);
        memcpy(out + at, t, tl);
        n += tl;
      }
      break;
    }
    default: {
      size_t cut = at < n ? (size_t)(rnd(rng) % (n - at + 1)) % 8 : 0;
      memmove(out + at, out + at + cut, n - at - cut);
      n -= cut;
    }
    }
  }
  return n;
}

void pm_test_corpus_check(const char *const *dirs, const char *const *tokens, size_t ntokens,
                          int inputs, pm_test_diff_check *check) {
  static corpus c;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  uint8_t *buf = malloc(CORPUS_FILE_MAX + EDIT_ROOM);
  assert_non_null(buf);
  memset(&c, 0, sizeof(c));
  for (; *dirs != NULL; dirs++)
    load_dir(&c, *dirs, check);
  assert_true(c.n > 20);
  for (int i = 0; i < inputs; i++) {
    int k = (int)(rnd(&rng) % (uint64_t)c.n);
    char label[64];
    size_t n;
    if (c.len[k] > SMALL_INPUT)
      continue;
    n = edit(&rng, buf, CORPUS_FILE_MAX + EDIT_ROOM, c.data[k], c.len[k], tokens, ntokens);
    snprintf(label, sizeof(label), "random input %d", i);
    check(buf, n, label);
  }
  for (int i = 0; i < c.n; i++)
    free(c.data[i]);
  free(buf);
}
