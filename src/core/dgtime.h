/* Clocks. Monotonic time for deadlines and durations; wall time only for display. */
#ifndef DG_TIME_H
#define DG_TIME_H

#include <stdint.h>

/* Monotonic milliseconds since an arbitrary origin. */
int64_t dg_now_ms(void);
/* Monotonic microseconds since an arbitrary origin. */
int64_t dg_now_us(void);
/* Wall-clock milliseconds since the Unix epoch. */
int64_t dg_wall_ms(void);
/* Sleeps ms milliseconds (restarts after signals). */
void dg_sleep_ms(int64_t ms);

#endif
