#ifndef PM_FUZZ_COMMON_H
#define PM_FUZZ_COMMON_H

/* Shared by the libFuzzer targets in this directory: invariant checks, a checked decode, and
 * the tree normaliser the round trip compares with. */
#include <stddef.h>
#include <stdint.h>

#include "pipemsg/pipemsg.h"

/* Every fuzz target's entry point (libFuzzer calls it; declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant violation is a finding: print it and trap, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fuzz_fail(__FILE__, __LINE__, #cond);                                                        \
  } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

typedef int (*fuzz_decoder)(const void *buf, size_t len, pm_msg **out, char *why);

/* Runs a decoder with the checks every decoder owes its caller: on failure *out is untouched
 * and the reason is non-empty and NUL-terminated within PM_REASON_MAX bytes (and nothing is
 * written past them); on success the message is well formed (valid kind, fields an object
 * that passes pm__tree_check) and every field can be read through the typed accessors.
 * Returns the message (caller frees) or NULL with the code in *rc. */
pm_msg *fuzz_decode(fuzz_decoder decode, const void *buf, size_t len, int *rc);

/* Encodes m, checks the output is non-empty and detected as enc; returns the code. */
int fuzz_encode(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len);

/* True if every string in the tree can be written as XML 1.0 text: no control character
 * other than tab, LF and CR, no U+FFFE or U+FFFF (PROTOCOL §3, "Scalars in XML"). */
int fuzz_xml_representable(const json_t *v);

/* The tree as it looks after crossing to XML and back, i.e. equal up to scalar typing:
 * numbers and booleans become their XML text (integers in decimal, reals %.17g, true/false);
 * {}, [], "" and null become {}; a non-root object whose only member is "Item" becomes a
 * one-element array (PROTOCOL §3: "Item" is reserved). New reference; NULL only on ENOMEM. */
json_t *fuzz_normalise(const json_t *fields);

/* Traps unless normalise(a) equals normalise(b), printing both trees. */
void fuzz_check_same_tree(const json_t *a, const json_t *b, const char *what);

#endif
