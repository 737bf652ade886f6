#ifndef PM_TESTS_CORPUS_CHECK_H
#define PM_TESTS_CORPUS_CHECK_H

#include <stddef.h>

/* A differential check (tests/fuzz/json_diff.c, xml_diff.c) over the fuzz corpora in every
 * build, valgrind and ASan included, not only under libFuzzer. check fails the test (cmocka)
 * when the two paths it compares disagree on the len bytes at p; label names the input. */
typedef void pm_test_diff_check(const void *p, size_t len, const char *label);

/* Every file of each directory in dirs (under tests/fuzz/corpus, NULL-terminated), then
 * `inputs` random edits of the small ones: bytes changed, one of tokens[0 .. ntokens - 1] put
 * in, ranges cut out. The same inputs every run (a fixed seed). */
void pm_test_corpus_check(const char *const *dirs, const char *const *tokens, size_t ntokens,
                          int inputs, pm_test_diff_check *check);

#endif
