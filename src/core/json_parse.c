#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "internal.h"
#include "json_parse.h"
#include "message_internal.h"
#include "pipemsg/error.h"

/* A strict JSON parser into a jansson tree: jansson's grammar and checks (load.c of 2.14, with
 * JSON_REJECT_DUPLICATES), in the same order, so every input gets the same verdict and the
 * same tree (tests/fuzz/fuzz_json_diff.c holds it to that). What differs is the speed: runs of
 * plain string bytes are skipped 32 at a time, and a string without escapes goes from the
 * input straight into its value, where jansson copies every byte through its lexer buffer and
 * then again into the value.
 *
 * The order matters where two rules meet. jansson keeps the first error it is told of, and
 * some of its lexer's failures tell nothing (an unknown word, a malformed number, a stray
 * byte): such a token only fails when the parser looks at it, and a value is first checked
 * against the depth limit. So an invalid token at depth 2049 is PM_EDEPTH, while a lexer
 * error (a bad string, an integer overflow, invalid UTF-8 anywhere, even in the byte after a
 * number) is PM_EPARSE whatever the depth. Here a lexer error stops the parse at once (its
 * verdict can no longer change), and a quiet failure is the token T_INVALID.
 *
 * One difference, on purpose: jansson drops a raw NUL byte that follows a number or a word
 * (its lexer pushes the byte after a token back, and reads a pushed-back NUL as "nothing
 * pushed back"), so it takes {"A":1\0} for {"A":1}. A raw NUL is no JSON anywhere: here it is
 * an invalid token, in a string a control character. */

enum {
  T_EOF = 0,
  T_INVALID = 256,
  T_STRING,
  T_INTEGER,
  T_REAL,
  T_TRUE,
  T_FALSE,
  T_NULL,
};

/* Objects this deep or less (the root is 1) look for a duplicate member name among their first
 * SEEN_KEYS names by comparing them (parse_object). */
#define SEEN_DEPTH 4
#define SEEN_KEYS 8

/* The longest token an error quotes (jansson's rule). */
#define ERROR_CONTEXT_MAX 20

typedef struct parser {
  const uint8_t *start, *end, *pos;
  int tok;
  const uint8_t *tok_at;
  /* T_STRING: its value, in the input (no escapes) or in scratch (unescaped). */
  const char *str;
  size_t str_len;
  int str_escaped;
  json_int_t integer; /* T_INTEGER */
  json_t *real;       /* T_REAL, owned until a value takes it */
  char *scratch;
  size_t scratch_cap;
  size_t depth;
  /* The model's rules (member names, nesting: pm__tree_check_at) applied as the tree is built,
   * when model_at > 0: the value parsed at depth model_at is the model's root, at its depth
   * model_depth. */
  size_t model_at;
  int model_depth;
  /* The first SEEN_KEYS member names of the open object at each depth up to SEEN_DEPTH, while
   * all of them were read in place (no escape): a duplicate among a few is found by comparing
   * them, cheaper than a lookup in the object's hash table. */
  struct {
    const char *p;
    size_t len;
  } seen[SEEN_DEPTH][SEEN_KEYS];
  int err; /* the first error, as jansson keeps its first */
  char *why;
} parser;

/* Records the first error only, with where it happened and, like jansson, the token it
 * happened in when that is short: the bytes read of it up to at (a lexer error) or all of it
 * (the parser's). Returns err. */
static int fail(parser *ps, int err, const uint8_t *at, const char *what) {
  const uint8_t *token_end = at > ps->tok_at ? at : ps->pos;
  size_t token_len = token_end > ps->tok_at ? (size_t)(token_end - ps->tok_at) : 0;
  int line = 1, column = 0;
  if (ps->err)
    return ps->err;
  ps->err = err;
  for (const uint8_t *q = ps->start; q < at && q < ps->end; q++) {
    if (*q == '\n') {
      line++;
      column = 0;
    } else if ((*q & 0xc0) != 0x80) {
      column++; /* characters, not bytes, like jansson */
    }
  }
  if (token_len == 0)
    pm__reason(ps->why, err, "JSON: %s near end of file at line %d, column %d", what, line,
               column);
  else if (token_len <= ERROR_CONTEXT_MAX)
    pm__reason(ps->why, err, "JSON: %s near '%.*s' at line %d, column %d", what, (int)token_len,
               (const char *)ps->tok_at, line, column);
  else
    pm__reason(ps->why, err, "JSON: %s at line %d, column %d", what, line, column);
  return err;
}

static json_t *oom(parser *ps) {
  fail(ps, PM_ENOMEM, ps->tok_at, "out of memory");
  return NULL;
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int hex_value(uint8_t c) {
  if (is_digit(c))
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

size_t pm__utf8_seq(const uint8_t *q, const uint8_t *end) {
  uint32_t cp;
  size_t n;
  if (*q >= 0xc2 && *q <= 0xdf) {
    n = 2;
    cp = *q & 0x1fu;
  } else if (*q >= 0xe0 && *q <= 0xef) {
    n = 3;
    cp = *q & 0x0fu;
  } else if (*q >= 0xf0 && *q <= 0xf4) {
    n = 4;
    cp = *q & 0x07u;
  } else {
    return 0;
  }
  if ((size_t)(end - q) < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((q[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (q[i] & 0x3fu);
  }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (n == 3 && cp < 0x800) ||
      (n == 4 && cp < 0x10000))
    return 0;
  return n;
}

/* jansson reads the byte after a number or a word to see where it ends, and decodes the UTF-8
 * sequence it starts as it reads: an invalid one there is a lexer error. */
static int bad_lookahead(const parser *ps, const uint8_t *q) {
  return q < ps->end && *q >= 0x80 && pm__utf8_seq(q, ps->end) == 0;
}

static int invalid_utf8(parser *ps, const uint8_t *q) {
  return fail(ps, PM_EPARSE, q, "invalid UTF-8");
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Bits set in the high bit of each byte of w that is a control character, '"', '\\' or of
 * 0x80 and above; for other bytes too at times (borrows), never missing one. */
static uint64_t needs_look(uint64_t w) {
  uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
  return (w | ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
          ((backslash - ONES) & ~backslash)) &
         HIGHS;
}

/* 32 bytes at a time while none of them needs a look, then byte by byte. Most of a big
 * message goes through here, twice (parse and encode). With SSE2 (every x86-64) a byte needs a
 * look when, as a signed byte, it is below 0x20 (a control character or 0x80 and above) or is
 * '"' or '\\': three compares per 16 bytes, a third of the word-at-a-time test's instructions. */
#if defined(__SSE2__)
static int plain32(const uint8_t *q) {
  const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  __m128i a = _mm_loadu_si128((const __m128i *)q), b = _mm_loadu_si128((const __m128i *)q + 1);
  __m128i look = _mm_or_si128(
      _mm_or_si128(_mm_cmpgt_epi8(space, a), _mm_cmpgt_epi8(space, b)),
      _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, quote), _mm_cmpeq_epi8(b, quote)),
                   _mm_or_si128(_mm_cmpeq_epi8(a, backslash), _mm_cmpeq_epi8(b, backslash))));
  return _mm_movemask_epi8(look) == 0;
}
#else
static int plain32(const uint8_t *q) {
  uint64_t w[4];
  memcpy(w, q, sizeof(w));
  return (needs_look(w[0]) | needs_look(w[1]) | needs_look(w[2]) | needs_look(w[3])) == 0;
}
#endif

const uint8_t *pm__json_plain_end(const uint8_t *q, const uint8_t *end) {
  while (end - q >= 32 && plain32(q))
    q += 32;
  while (end - q >= 8) {
    uint64_t w;
    memcpy(&w, q, 8);
    if (needs_look(w) != 0)
      break;
    q += 8;
  }
  while (q < end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
    q++;
  return q;
}

static int scratch_reserve(parser *ps, size_t n) {
  char *nb;
  if (n <= ps->scratch_cap)
    return 0;
  nb = pm__realloc(ps->scratch, n);
  if (nb == NULL)
    return PM_ENOMEM;
  ps->scratch = nb;
  ps->scratch_cap = n;
  return 0;
}

static uint32_t hex4(const uint8_t *q) {
  return (uint32_t)(hex_value(q[0]) << 12 | hex_value(q[1]) << 8 | hex_value(q[2]) << 4 |
                    hex_value(q[3]));
}

static size_t utf8_put(uint32_t cp, char *t) {
  if (cp < 0x80) {
    t[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    t[0] = (char)(0xc0 | (cp >> 6));
    t[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    t[0] = (char)(0xe0 | (cp >> 12));
    t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    t[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  t[0] = (char)(0xf0 | (cp >> 18));
  t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  t[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Unescapes the string body s..e (already checked: escapes well formed, UTF-8 valid) into
 * scratch; the result is never longer. Surrogate escapes must pair, high then low. */
static int unescape(parser *ps, const uint8_t *s, const uint8_t *e) {
  char *t;
  if (scratch_reserve(ps, (size_t)(e - s) + 1) < 0)
    return fail(ps, PM_ENOMEM, s, "out of memory");
  t = ps->scratch;
  while (s < e) {
    const uint8_t *b = memchr(s, '\\', (size_t)(e - s));
    size_t run = (size_t)((b ? b : e) - s);
    uint32_t cp;
    memcpy(t, s, run);
    t += run;
    s += run;
    if (b == NULL)
      break;
    s++;
    switch (*s++) {
    case 'b':
      *t++ = '\b';
      continue;
    case 'f':
      *t++ = '\f';
      continue;
    case 'n':
      *t++ = '\n';
      continue;
    case 'r':
      *t++ = '\r';
      continue;
    case 't':
      *t++ = '\t';
      continue;
    case 'u':
      break;
    default: /* '"', '\\', '/' */
      *t++ = (char)s[-1];
      continue;
    }
    cp = hex4(s);
    s += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
      return fail(ps, PM_EPARSE, s, "invalid Unicode escape (a lone low surrogate)");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      uint32_t low;
      if (e - s < 6 || s[0] != '\\' || s[1] != 'u')
        return fail(ps, PM_EPARSE, s, "invalid Unicode escape (a lone high surrogate)");
      low = hex4(s + 2);
      if (low < 0xdc00 || low > 0xdfff)
        return fail(ps, PM_EPARSE, s, "invalid Unicode escape (a high surrogate, no low)");
      s += 6;
      cp = ((cp - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
    }
    t += utf8_put(cp, t);
  }
  ps->str = ps->scratch;
  ps->str_len = (size_t)(t - ps->scratch);
  return 0;
}

/* q is at the opening quote. */
static int lex_string(parser *ps, const uint8_t *q) {
  const uint8_t *s = ++q, *end = ps->end;
  int escaped = 0;
  for (;;) {
    q = pm__json_plain_end(q, end);
    if (q == end)
      return fail(ps, PM_EPARSE, q, "premature end of input in a string");
    if (*q == '"')
      break;
    if (*q < 0x20)
      return fail(ps, PM_EPARSE, q, *q == '\n' ? "unexpected newline" : "control character");
    if (*q == '\\') {
      escaped = 1;
      q++;
      if (q < end && *q == 'u') {
        q++;
        for (int i = 0; i < 4; i++, q++) {
          if (q == end || hex_value(*q) < 0)
            return fail(ps, PM_EPARSE, q, "invalid escape");
        }
      } else if (q < end && strchr("\"\\/bfnrt", *q) != NULL && *q != '\0') {
        q++;
      } else {
        return fail(ps, PM_EPARSE, q, "invalid escape");
      }
    } else {
      size_t n = pm__utf8_seq(q, end);
      if (n == 0)
        return invalid_utf8(ps, q);
      q += n;
    }
  }
  ps->pos = q + 1;
  ps->str_escaped = escaped;
  if (escaped)
    return unescape(ps, s, q);
  ps->str = (const char *)s;
  ps->str_len = (size_t)(q - s);
  return 0;
}

/* A number that stops being one at q: a quiet failure, unless q is invalid UTF-8. */
static int number_fail(parser *ps, const uint8_t *q) {
  if (bad_lookahead(ps, q))
    return invalid_utf8(ps, q);
  ps->pos = q;
  ps->tok = T_INVALID;
  return 0;
}

/* q is at '-' or a digit. */
static int lex_number(parser *ps, const uint8_t *q) {
  const uint8_t *s = q, *end = ps->end;
  int real = 0;
  if (*q == '-')
    q++;
  if (q < end && *q == '0') {
    q++;
    if (q < end && is_digit(*q))
      return number_fail(ps, q);
  } else if (q < end && is_digit(*q)) {
    while (q < end && is_digit(*q))
      q++;
  } else {
    return number_fail(ps, q);
  }
  if (q < end && *q == '.') {
    real = 1;
    q++;
    if (q == end || !is_digit(*q))
      return number_fail(ps, q);
    while (q < end && is_digit(*q))
      q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    real = 1;
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (q == end || !is_digit(*q))
      return number_fail(ps, q);
    while (q < end && is_digit(*q))
      q++;
  }
  if (bad_lookahead(ps, q))
    return invalid_utf8(ps, q);
  ps->pos = q;
  if (real) {
    /* jansson's own conversion (strtod, whatever the locale), so the values are the same bit
     * for bit; reals are rare and short, so its lexer costs little here. */
    json_error_t err;
    memset(&err, 0, sizeof(err));
    ps->real = json_loadb((const char *)s, (size_t)(q - s), JSON_DECODE_ANY, &err);
    if (ps->real == NULL)
      return err.text[0] == '\0' ? fail(ps, PM_ENOMEM, s, "out of memory")
                                 : fail(ps, PM_EPARSE, s, "real number overflow");
    ps->tok = T_REAL;
  } else {
    int neg = *s == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (const uint8_t *d = s + neg; d < q; d++) {
      unsigned digit = (unsigned)(*d - '0');
      if (v > (limit - digit) / 10)
        return fail(ps, PM_EPARSE, s, neg ? "too big negative integer" : "too big integer");
      v = v * 10 + digit;
    }
    if (!neg)
      ps->integer = (json_int_t)v;
    else
      ps->integer = v > (uint64_t)INT64_MAX ? INT64_MIN : -(json_int_t)v;
    ps->tok = T_INTEGER;
  }
  return 0;
}

/* Reads the next token into ps->tok; returns 0, or the lexer's error (which ends the parse). */
static int lex(parser *ps) {
  const uint8_t *q = ps->pos, *end = ps->end;
  if (ps->real != NULL) {
    json_decref(ps->real);
    ps->real = NULL;
  }
  while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
    q++;
  ps->tok_at = q;
  if (q == end) {
    ps->pos = q;
    ps->tok = T_EOF;
    return 0;
  }
  switch (*q) {
  case '{':
  case '}':
  case '[':
  case ']':
  case ':':
  case ',':
    ps->tok = *q;
    ps->pos = q + 1;
    return 0;
  case '"':
    ps->tok = T_STRING;
    return lex_string(ps, q);
  default:
    break;
  }
  if (*q == '-' || is_digit(*q))
    return lex_number(ps, q);
  if (is_alpha(*q)) {
    const uint8_t *w = q;
    while (q < end && is_alpha(*q))
      q++;
    if (bad_lookahead(ps, q))
      return invalid_utf8(ps, q);
    ps->pos = q;
    if (q - w == 4 && memcmp(w, "true", 4) == 0)
      ps->tok = T_TRUE;
    else if (q - w == 5 && memcmp(w, "false", 5) == 0)
      ps->tok = T_FALSE;
    else if (q - w == 4 && memcmp(w, "null", 4) == 0)
      ps->tok = T_NULL;
    else
      ps->tok = T_INVALID;
    return 0;
  }
  if (*q >= 0x80 && pm__utf8_seq(q, end) == 0)
    return invalid_utf8(ps, q);
  ps->pos = q + (*q >= 0x80 ? pm__utf8_seq(q, end) : 1);
  ps->tok = T_INVALID;
  return 0;
}

static json_t *parse_value(parser *ps);

/* Whether the object being parsed (n_seen names so far, all of them in seen when n_seen <=
 * SEEN_KEYS) has a member named key already; adds key to seen when it can. */
static int duplicate(parser *ps, json_t *object, const char *key, size_t key_len,
                     size_t *n_seen) {
  size_t d = ps->depth - 1;
  if (d < SEEN_DEPTH && *n_seen < SEEN_KEYS && !ps->str_escaped) {
    for (size_t i = 0; i < *n_seen; i++)
      if (ps->seen[d][i].len == key_len && memcmp(ps->seen[d][i].p, key, key_len) == 0)
        return 1;
    ps->seen[d][*n_seen].p = key;
    ps->seen[d][*n_seen].len = key_len;
    ++*n_seen;
    return 0;
  }
  /* From here on every name is looked up: the hash table has them all. */
  *n_seen = SEEN_KEYS + 1;
  return json_object_getn(object, key, key_len) != NULL;
}

static json_t *parse_object(parser *ps) {
  json_t *object = json_object();
  char *key_copy = NULL;
  size_t n_seen = 0;
  if (object == NULL)
    return oom(ps);
  if (lex(ps) < 0)
    goto error;
  if (ps->tok == '}')
    return object;
  for (;;) {
    const char *key;
    size_t key_len;
    json_t *value;
    if (ps->tok != T_STRING) {
      fail(ps, PM_EPARSE, ps->tok_at, "string or '}' expected");
      goto error;
    }
    key = ps->str;
    key_len = ps->str_len;
    if (ps->str_escaped) {
      /* The value's string would overwrite scratch. */
      if (memchr(key, '\0', key_len) != NULL) {
        fail(ps, PM_EPARSE, ps->tok_at, "NUL byte in object key not supported");
        goto error;
      }
      key_copy = pm__malloc(key_len + 1);
      if (key_copy == NULL) {
        oom(ps);
        goto error;
      }
      memcpy(key_copy, key, key_len);
      key = key_copy;
    }
    if (ps->model_at > 0 && !pm__name_valid_n(key, key_len)) {
      fail(ps, PM_EINVAL, ps->tok_at, "invalid member name");
      goto error;
    }
    if (duplicate(ps, object, key, key_len, &n_seen)) {
      fail(ps, PM_EPARSE, ps->tok_at, "duplicate object key");
      goto error;
    }
    if (lex(ps) < 0)
      goto error;
    if (ps->tok != ':') {
      fail(ps, PM_EPARSE, ps->tok_at, "':' expected");
      goto error;
    }
    if (lex(ps) < 0)
      goto error;
    value = parse_value(ps);
    if (value == NULL)
      goto error;
    if (json_object_setn_new_nocheck(object, key, key_len, value) < 0) {
      oom(ps);
      goto error;
    }
    pm__free(key_copy);
    key_copy = NULL;
    if (lex(ps) < 0)
      goto error;
    if (ps->tok != ',')
      break;
    if (lex(ps) < 0)
      goto error;
  }
  if (ps->tok != '}') {
    fail(ps, PM_EPARSE, ps->tok_at, "'}' expected");
    goto error;
  }
  return object;
error:
  pm__free(key_copy);
  json_decref(object);
  return NULL;
}

static json_t *parse_array(parser *ps) {
  json_t *array = json_array();
  if (array == NULL)
    return oom(ps);
  if (lex(ps) < 0)
    goto error;
  if (ps->tok == ']')
    return array;
  while (ps->tok != T_EOF) {
    json_t *elem = parse_value(ps);
    if (elem == NULL)
      goto error;
    if (json_array_append_new(array, elem) < 0) {
      oom(ps);
      goto error;
    }
    if (lex(ps) < 0)
      goto error;
    if (ps->tok != ',')
      break;
    if (lex(ps) < 0)
      goto error;
  }
  if (ps->tok != ']') {
    fail(ps, PM_EPARSE, ps->tok_at, "']' expected");
    goto error;
  }
  return array;
error:
  json_decref(array);
  return NULL;
}

/* The current token is the value's first. */
static json_t *parse_value(parser *ps) {
  json_t *v;
  if (++ps->depth > PM_JSON_PARSE_DEPTH_MAX) {
    fail(ps, PM_EDEPTH, ps->tok_at, "maximum parsing depth reached");
    return NULL;
  }
  /* The model's depth of a member or element (the root's own is the caller's). */
  if (ps->model_at > 0 && ps->depth > ps->model_at &&
      (size_t)ps->model_depth + (ps->depth - ps->model_at) > PM_NESTING_MAX) {
    fail(ps, PM_EDEPTH, ps->tok_at, "nesting deeper than the model allows");
    return NULL;
  }
  switch (ps->tok) {
  case T_STRING:
    if (ps->str_escaped && memchr(ps->str, '\0', ps->str_len) != NULL) {
      fail(ps, PM_EPARSE, ps->tok_at, "\\u0000 is not allowed");
      return NULL;
    }
    v = json_stringn_nocheck(ps->str, ps->str_len);
    break;
  case T_INTEGER:
    v = json_integer(ps->integer);
    break;
  case T_REAL:
    v = ps->real;
    ps->real = NULL;
    break;
  case T_TRUE:
    v = json_true();
    break;
  case T_FALSE:
    v = json_false();
    break;
  case T_NULL:
    v = json_null();
    break;
  case '{':
    v = parse_object(ps);
    break;
  case '[':
    v = parse_array(ps);
    break;
  case T_INVALID:
    fail(ps, PM_EPARSE, ps->tok_at, "invalid token");
    return NULL;
  default:
    fail(ps, PM_EPARSE, ps->tok_at, "unexpected token");
    return NULL;
  }
  if (v == NULL)
    return oom(ps);
  ps->depth--;
  return v;
}

static int parse(const uint8_t *p, size_t len, int model_depth, json_t **out, char *why) {
  parser ps;
  json_t *root = NULL;
  memset(&ps, 0, sizeof(ps));
  ps.start = ps.pos = p;
  ps.end = p + len;
  ps.model_at = model_depth > 0 ? 1 : 0;
  ps.model_depth = model_depth;
  ps.why = why;
  if (lex(&ps) < 0)
    goto done;
  if (ps.tok != '[' && ps.tok != '{') {
    fail(&ps, PM_EPARSE, ps.tok_at, "'[' or '{' expected");
    goto done;
  }
  root = parse_value(&ps);
  if (root == NULL || lex(&ps) < 0)
    goto done;
  if (ps.tok != T_EOF)
    fail(&ps, PM_EPARSE, ps.tok_at, "end of file expected");
done:
  if (ps.real != NULL)
    json_decref(ps.real);
  pm__free(ps.scratch);
  if (ps.err) {
    json_decref(root);
    return ps.err;
  }
  *out = root;
  return 0;
}

int pm__json_parse(const uint8_t *p, size_t len, json_t **out, char *why) {
  return parse(p, len, 0, out, why);
}

int pm__json_parse_at(const uint8_t *p, size_t len, int depth, json_t **out) {
  return parse(p, len, depth, out, NULL);
}

int pm__json_parse_message(const uint8_t *p, size_t len, const char **kind, size_t *kind_len,
                           json_t **fields) {
  parser ps;
  json_t *v = NULL;
  memset(&ps, 0, sizeof(ps));
  ps.start = ps.pos = p;
  ps.end = p + len;
  if (lex(&ps) < 0 || ps.tok != '{' || lex(&ps) < 0 || ps.tok != T_STRING || ps.str_escaped)
    goto declined;
  *kind = ps.str; /* in p: not escaped */
  *kind_len = ps.str_len;
  if (!pm__name_valid_n(*kind, *kind_len) || lex(&ps) < 0 || ps.tok != ':' || lex(&ps) < 0 ||
      ps.tok != '{')
    goto declined;
  /* The fields are the message object's member, at depth 2 as in the whole tree; to the model
   * they are the root, at depth 1 (pm__tree_check). */
  ps.depth = 1;
  ps.model_at = 2;
  ps.model_depth = 1;
  v = parse_value(&ps);
  if (v == NULL || lex(&ps) < 0 || ps.tok != '}' || lex(&ps) < 0 || ps.tok != T_EOF)
    goto declined;
  pm__free(ps.scratch);
  *fields = v;
  return 1;
declined:
  if (ps.real != NULL)
    json_decref(ps.real);
  pm__free(ps.scratch);
  json_decref(v);
  return 0;
}
