// C interface between package armnn (Go, cgo) and Arm NN (C++). Built only
// with the `armnn` build tag.
#ifndef SHORTCUT_ARMNN_GLUE_H
#define SHORTCUT_ARMNN_GLUE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Result codes of sc_load.
enum { SC_OK = 0, SC_REFUSED = 1, SC_FAILED = 2 };

// Tensor data types, as package armnn names them.
enum { SC_F32 = 1, SC_I8 = 2, SC_U8 = 3, SC_I32 = 4 };

#define SC_MAX_DIMS 6

typedef struct {
	int dtype;
	int ndims;
	int dims[SC_MAX_DIMS];
	float scale;
	int zero_point;
	size_t bytes;
	void* data;  // owned by the network: inputs are read from it, outputs written
} sc_tensor;

typedef struct sc_net sc_net;

// sc_load parses a .tflite image, optimizes it for the comma-separated
// backends (in order of preference) and loads it. On failure it returns
// NULL, sets *code (SC_REFUSED when Arm NN rejects the model or no backend is
// usable, SC_FAILED otherwise) and *err (free with sc_free_string).
sc_net* sc_load(const void* model, size_t len, const char* backends, int* code, char** err);
int sc_num_inputs(const sc_net* n);
int sc_num_outputs(const sc_net* n);
// sc_input and sc_output describe tensor i; NULL when out of range.
const sc_tensor* sc_input(const sc_net* n, int i);
const sc_tensor* sc_output(const sc_net* n, int i);
// sc_backends_used lists the backends the optimizer assigned layers to.
const char* sc_backends_used(const sc_net* n);
// sc_run runs the network once on the input buffers into the output
// buffers; 0 on success, else -1 with *err set. Not safe for concurrent use
// on one network.
int sc_run(sc_net* n, char** err);
void sc_free(sc_net* n);
void sc_free_string(char* s);
// sc_registered lists the backends compiled in and installed (free with
// sc_free_string); sc_version is Arm NN's version.
char* sc_registered(void);
const char* sc_version(void);

#ifdef __cplusplus
}
#endif
#endif
