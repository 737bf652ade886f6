#ifndef PIPEMSG_INTERNAL_H
#define PIPEMSG_INTERNAL_H

/* Cross-file internals of libpipemsg; not installed. */

#include <stddef.h>

/* All library allocation goes through these, so tests can fail the Nth allocation. */
void *pm__malloc(size_t n);
void *pm__calloc(size_t count, size_t n);
void *pm__realloc(void *p, size_t n);
char *pm__strdup(const char *s);
void pm__free(void *p);
/* Test hook: the nth allocation from now (1-based) and all after it fail; 0 disables. */
void pm__alloc_fail_after(unsigned long n);

/* Writes a reason into why (PM_REASON_MAX bytes) when why is not NULL; returns err. */
int pm__reason(char *why, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Bytes the reader has allocated for the payload (tests check lazy growth). */
struct pm_reader;
size_t pm__reader_capacity(const struct pm_reader *r);

/* The schema XSD text embedded at build time. */
extern const char pm__rpschema_xsd[];
extern const unsigned long pm__rpschema_xsd_len;

#endif
