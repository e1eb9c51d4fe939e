# Sourced by the GPU scripts: points GoMLX at the CUDA PJRT plugin that JAX ships on the lent
# GPU machine (the recipe verified in shared/NOTES.md). Needs PYTHON and die() from the caller;
# sets BACKEND and OPS.
PLUG=$("$PYTHON" -c "import jax_plugins.xla_cuda13 as m, os; print(os.path.dirname(m.__file__))") ||
	die "no JAX CUDA 13 PJRT plugin (python3 -c 'import jax_plugins.xla_cuda13' failed)"
[ -f "$PLUG/xla_cuda_plugin.so" ] || die "$PLUG/xla_cuda_plugin.so missing"
NV=$("$PYTHON" -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))")/nvidia
LD_LIBRARY_PATH=$(ls -d "$NV"/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH GOPJRT_CUDA_CHECKS=no GOMLX_NO_AUTO_INSTALL=1 GOMLX_BACKEND="xla:$PLUG/xla_cuda_plugin.so"
BACKEND=$GOMLX_BACKEND
OPS=native
