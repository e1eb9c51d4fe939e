//go:build armnn

// The Arm NN side of package armnn: parse a .tflite image with Arm NN's
// TfLite parser, optimize it for the backends asked for, load it into a
// runtime and run it on buffers this file owns. Every Arm NN exception is
// caught here and turned into an error string: none may cross into Go.

#include "glue.h"

#include <armnn/ArmNN.hpp>
#include <armnn/BackendRegistry.hpp>
#include <armnn/Exceptions.hpp>
#include <armnnTfLiteParser/ITfLiteParser.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

char* dupString(const std::string& s) {
	char* p = static_cast<char*>(std::malloc(s.size() + 1));
	if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

// oneLine keeps messages printable on one log line.
std::string oneLine(const std::string& in) {
	std::string s;
	for (unsigned char c : in) {
		if (c == '\n' || c == '\r' || c == '\t') {
			s += ' ';
		} else if (c < 0x20 || c == 0x7f) {
			s += '?';
		} else {
			s += static_cast<char>(c);
		}
	}
	return s;
}

int dtypeOf(armnn::DataType t) {
	switch (t) {
		case armnn::DataType::Float32: return SC_F32;
		case armnn::DataType::QAsymmS8:
		case armnn::DataType::QSymmS8: return SC_I8;
		case armnn::DataType::QAsymmU8: return SC_U8;
		case armnn::DataType::Signed32: return SC_I32;
		default: return 0;
	}
}

struct Failure {
	int code;
	std::string msg;
};

// runtime is the process's one Arm NN runtime, made on first use and never
// destroyed: Debian ships the backends as dynamic backends, which a runtime
// registers when it is created and deregisters when it is destroyed.
armnn::IRuntime* runtime() {
	static armnn::IRuntime* rt = nullptr;
	static std::once_flag f;
	std::call_once(f, [] {
		armnn::ConfigureLogging(false, false, armnn::LogSeverity::Fatal);
		armnn::IRuntime::CreationOptions ro;
		rt = armnn::IRuntime::CreateRaw(ro);
	});
	return rt;
}

}  // namespace

struct sc_net {
	armnn::IRuntime* runtime = nullptr;
	armnn::NetworkId id = 0;
	bool loaded = false;
	std::vector<sc_tensor> inputs, outputs;
	std::vector<std::vector<unsigned char>> inData, outData;
	armnn::InputTensors inBind;
	armnn::OutputTensors outBind;
	std::string used;
};

namespace {

sc_tensor describe(const armnn::TensorInfo& info, const std::string& what) {
	sc_tensor t{};
	t.dtype = dtypeOf(info.GetDataType());
	if (t.dtype == 0)
		throw Failure{SC_REFUSED, what + " has Arm NN type " + armnn::GetDataTypeName(info.GetDataType()) +
		                              ", which package armnn cannot feed or read"};
	if (info.GetNumDimensions() > SC_MAX_DIMS)
		throw Failure{SC_REFUSED, what + " has more than 6 dimensions"};
	t.ndims = static_cast<int>(info.GetNumDimensions());
	for (int i = 0; i < t.ndims; i++) t.dims[i] = static_cast<int>(info.GetShape()[i]);
	t.scale = info.IsQuantized() ? info.GetQuantizationScale() : 0;
	t.zero_point = info.IsQuantized() ? info.GetQuantizationOffset() : 0;
	t.bytes = info.GetNumBytes();
	return t;
}

void load(sc_net* n, const void* model, size_t len, const char* backendList) {
	n->runtime = runtime();
	std::vector<armnn::BackendId> backends;
	std::istringstream s(backendList ? backendList : "");
	std::string tok;
	while (std::getline(s, tok, ',')) {
		if (!tok.empty()) backends.push_back(tok);
	}
	if (backends.empty()) throw Failure{SC_FAILED, "no backend named"};
	// The first backend must be installed; the others are fallbacks for
	// layers it lacks, used when installed.
	if (!armnn::BackendRegistryInstance().IsBackendRegistered(backends[0]))
		throw Failure{SC_REFUSED, "backend " + backends[0].Get() + " is not installed (installed: " +
		                              armnn::BackendRegistryInstance().GetBackendIdsAsString() + ")"};
	std::vector<armnn::BackendId> usable;
	std::string want;
	for (auto& b : backends) {
		if (!armnn::BackendRegistryInstance().IsBackendRegistered(b)) continue;
		usable.push_back(b);
		want += (want.empty() ? "" : ",") + b.Get();
	}
	backends = usable;

	auto parser = armnnTfLiteParser::ITfLiteParser::Create();
	armnn::INetworkPtr net(nullptr, [](armnn::INetwork*) {});
	try {
		const auto* p = static_cast<const uint8_t*>(model);
		net = parser->CreateNetworkFromBinary(std::vector<uint8_t>(p, p + len));
	} catch (const armnn::Exception& e) {
		throw Failure{SC_REFUSED, std::string("TfLite parser: ") + e.what()};
	}
	if (!net) throw Failure{SC_REFUSED, "TfLite parser returned no network"};
	if (parser->GetSubgraphCount() != 1) throw Failure{SC_REFUSED, "the model has more than one subgraph"};
	auto inNames = parser->GetSubgraphInputTensorNames(0);
	auto outNames = parser->GetSubgraphOutputTensorNames(0);

	std::vector<std::string> messages;
	armnn::IOptimizedNetworkPtr opt(nullptr, [](armnn::IOptimizedNetwork*) {});
	try {
		opt = armnn::Optimize(*net, backends, n->runtime->GetDeviceSpec(), armnn::OptimizerOptions(),
		                      armnn::Optional<std::vector<std::string>&>(messages));
	} catch (const armnn::Exception& e) {
		std::string m = e.what();
		for (auto& x : messages) m += "; " + x;
		throw Failure{SC_REFUSED, "optimizer (" + want + "): " + m};
	}
	if (!opt) {
		std::string m;
		for (auto& x : messages) m += (m.empty() ? "" : "; ") + x;
		throw Failure{SC_REFUSED, "optimizer (" + want + "): " + m};
	}
	std::string loadErr;
	if (n->runtime->LoadNetwork(n->id, std::move(opt), loadErr) != armnn::Status::Success)
		throw Failure{SC_REFUSED, "loading the network (" + want + "): " + loadErr};
	n->loaded = true;
	n->used = want;

	for (size_t i = 0; i < inNames.size(); i++) {
		auto b = parser->GetNetworkInputBindingInfo(0, inNames[i]);
		sc_tensor t = describe(b.second, "input " + std::to_string(i) + " '" + inNames[i] + "'");
		n->inData.emplace_back(t.bytes, 0);
		t.data = n->inData.back().data();
		n->inputs.push_back(t);
		n->inBind.emplace_back(b.first, armnn::ConstTensor(b.second, t.data));
	}
	for (size_t i = 0; i < outNames.size(); i++) {
		auto b = parser->GetNetworkOutputBindingInfo(0, outNames[i]);
		sc_tensor t = describe(b.second, "output " + std::to_string(i) + " '" + outNames[i] + "'");
		n->outData.emplace_back(t.bytes, 0);
		t.data = n->outData.back().data();
		n->outputs.push_back(t);
		n->outBind.emplace_back(b.first, armnn::Tensor(b.second, t.data));
	}
}

}  // namespace

extern "C" {

sc_net* sc_load(const void* model, size_t len, const char* backends, int* code, char** err) {
	sc_net* n = new (std::nothrow) sc_net();
	if (n == nullptr) {
		*code = SC_FAILED;
		*err = dupString("out of memory");
		return nullptr;
	}
	// inData/outData must not reallocate once tensors point into them.
	n->inData.reserve(64);
	n->outData.reserve(64);
	try {
		load(n, model, len, backends);
		*code = SC_OK;
		return n;
	} catch (const Failure& f) {
		*code = f.code;
		*err = dupString(oneLine(f.msg));
	} catch (const armnn::Exception& e) {
		*code = SC_REFUSED;
		*err = dupString(oneLine(std::string("Arm NN: ") + e.what()));
	} catch (const std::exception& e) {
		*code = SC_FAILED;
		*err = dupString(oneLine(e.what()));
	} catch (...) {
		*code = SC_FAILED;
		*err = dupString("unknown C++ exception");
	}
	sc_free(n);
	return nullptr;
}

int sc_num_inputs(const sc_net* n) { return static_cast<int>(n->inputs.size()); }
int sc_num_outputs(const sc_net* n) { return static_cast<int>(n->outputs.size()); }

const sc_tensor* sc_input(const sc_net* n, int i) {
	return i >= 0 && i < static_cast<int>(n->inputs.size()) ? &n->inputs[i] : nullptr;
}

const sc_tensor* sc_output(const sc_net* n, int i) {
	return i >= 0 && i < static_cast<int>(n->outputs.size()) ? &n->outputs[i] : nullptr;
}

const char* sc_backends_used(const sc_net* n) { return n->used.c_str(); }

int sc_run(sc_net* n, char** err) {
	try {
		if (n->runtime->EnqueueWorkload(n->id, n->inBind, n->outBind) != armnn::Status::Success) {
			*err = dupString("EnqueueWorkload failed on " + n->used);
			return -1;
		}
		return 0;
	} catch (const std::exception& e) {
		*err = dupString(oneLine(std::string("EnqueueWorkload: ") + e.what()));
	} catch (...) {
		*err = dupString("EnqueueWorkload: unknown C++ exception");
	}
	return -1;
}

void sc_free(sc_net* n) {
	if (n == nullptr) return;
	try {
		if (n->loaded) n->runtime->UnloadNetwork(n->id);
	} catch (...) {
	}
	delete n;
}

void sc_free_string(char* s) { std::free(s); }

char* sc_registered(void) {
	try {
		runtime();
		return dupString(armnn::BackendRegistryInstance().GetBackendIdsAsString());
	} catch (...) {
		return dupString("");
	}
}

const char* sc_version(void) { return ARMNN_VERSION; }

}  // extern "C"
