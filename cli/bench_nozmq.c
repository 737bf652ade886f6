/* pipemsg bench without ZeroMQ (bench.h): a Windows build made with no libzmq, which is
 * optional there; the zmq rows are skipped with this reason. */
#include "bench.h"

const char *bench_zmq_missing(void) {
  return "ZeroMQ is optional on Windows and this pipemsg was built without it";
}

/* Never called: cmd_bench.c asks bench_zmq_missing first. */
int bench_event_zmq(bench *bh, const wire *w, double *rate, uint64_t *samples) {
  (void)bh;
  (void)w;
  (void)rate;
  (void)samples;
  return PM_EINVAL;
}
