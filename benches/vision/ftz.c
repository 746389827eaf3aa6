/* Sets FTZ and DAZ in MXCSR on the calling thread, for benches/vision/pybench.py (loaded with
 * ctypes), so that the Python reference runs with the flags classproof sets (src/vision/fpu.rs).
 * Built at bench time by benches/vision/compare.sh: cc -O2 -shared -fPIC -o ftz.so ftz.c */
#include <xmmintrin.h>

#define FTZ 0x8000u /* bit 15 */
#define DAZ 0x0040u /* bit 6 */

void classproof_flush_subnormals(void) { _mm_setcsr(_mm_getcsr() | FTZ | DAZ); }

int classproof_subnormals_flushed(void) { return (_mm_getcsr() & (FTZ | DAZ)) == (FTZ | DAZ); }
