/* The native runtime's C API: load a packed model (.apn, `autoprec pack`)
 * and run it, from C or any language with a C FFI. Link autoprec::runtime
 * (CMake: find_package(autoprec)) or `pkg-config --libs autoprec-runtime`.
 *
 * Tensors are float32, NCHW, batch first, C order. Every function that can
 * fail returns NULL or -1 and leaves a one-line reason in
 * apn_last_error() (per thread). A model is not safe to run from two
 * threads at once; load one per thread. */
#ifndef AUTOPREC_NATIVE_C_API_H
#define AUTOPREC_NATIVE_C_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apn_model apn_model;

/* Loads and checks a packed model file; NULL on failure. */
apn_model* apn_load(const char* path);
/* Frees a model (NULL is allowed). */
void apn_free(apn_model* model);
/* The last failure of this thread, or "" when none. */
const char* apn_last_error(void);

/* The input of one example: its rank (1 or 3) and sizes, and its number of values. */
int apn_input_rank(const apn_model* model);
int64_t apn_input_dim(const apn_model* model, int index);
int64_t apn_input_size(const apn_model* model);
/* The number of values per example of the first output (e.g. the classes). */
int64_t apn_output_size(const apn_model* model);

/* Runs `batch` examples of `input` (batch x apn_input_size floats) and writes
 * the first output (batch x apn_output_size floats) to `output`, which holds
 * `output_capacity` floats. Returns the floats written, or -1. */
int64_t apn_run(apn_model* model, const float* input, int64_t batch, float* output, int64_t output_capacity);

#ifdef __cplusplus
}
#endif

#endif
