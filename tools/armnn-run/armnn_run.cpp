// armnn-run: runs one .tflite model through Arm NN (an implementation of
// TFLite's operators independent of TFLite itself) and writes its outputs as
// .npy files, so that Go tests can hold Shortcut's runtime to a second
// witness. Built by build.sh against Debian's Arm NN 20.08; driven by the Go
// package internal/armnnwitness.
//
//   armnn-run MODEL.tflite [--input IN.npy]... --outdir DIR
//             [--backends CpuAcc,CpuRef] [--iters N]
//
// Inputs are .npy files (format 1.0-3.0, C order, '<f4', '|i1', '|u1' or
// '<i4') in the order of the model's inputs, each with its input tensor's
// dtype and shape. Every output i goes to DIR/output_<i>.npy, in the order of
// the model's outputs, with the dtype the model declares.
//
// Backends come from --backends, else the SHORTCUT_ARMNN_BACKENDS variable,
// else CpuAcc (when registered, as on arm64 with libarmnn-cpuacc-backend22)
// followed by CpuRef.
//
// On success it prints one line per output and a timing line to stdout. On
// failure it prints one line "armnn-run: ..." to stderr and exits with
//   2  bad arguments or input files,
//   3  Arm NN refused the model (parser or optimizer: unsupported operator,
//      data type or quantization),
//   1  anything else (running, writing outputs).
// Some unsupported schemes never reach an exception: Debian builds Arm NN
// with assertions on, and e.g. per-channel FULLY_CONNECTED weights fail an
// assert() in the optimizer, so the process dies with SIGABRT and the
// assertion text on stderr.

#include <armnn/ArmNN.hpp>
#include <armnn/BackendRegistry.hpp>
#include <armnn/Exceptions.hpp>
#include <armnnTfLiteParser/ITfLiteParser.hpp>

#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const int kExitOther = 1;
const int kExitUsage = 2;
const int kExitRefused = 3;

// Failure carries the one-line message and the exit code to report.
struct Failure {
    int code;
    std::string msg;
};

[[noreturn]] void fail(int code, const std::string& msg) { throw Failure{code, msg}; }

// One printable line: Arm NN messages sometimes span lines or carry raw
// bytes (it prints the fused activation enum as a char), and the Go side
// reads the last line of stderr.
std::string oneLine(const std::string& in) {
    std::string s;
    for (unsigned char c : in) {
        if (c == '\n' || c == '\r' || c == '\t') {
            s += ' ';
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            s += hex;
        } else {
            s += static_cast<char>(c);
        }
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

std::string shapeText(const std::vector<unsigned int>& shape) {
    std::ostringstream o;
    o << "[";
    for (size_t i = 0; i < shape.size(); i++) o << (i ? "," : "") << shape[i];
    o << "]";
    return o.str();
}

// ---- .npy ------------------------------------------------------------------

struct Npy {
    std::string dtype;  // float32, int8, uint8, int32
    std::vector<unsigned int> shape;
    std::vector<char> data;
};

size_t dtypeSize(const std::string& dtype) {
    if (dtype == "float32" || dtype == "int32") return 4;
    return 1;
}

std::string descrToDtype(const std::string& descr) {
    if (descr == "<f4") return "float32";
    if (descr == "<i4") return "int32";
    if (descr == "|i1" || descr == "<i1" || descr == "i1") return "int8";
    if (descr == "|u1" || descr == "<u1" || descr == "u1") return "uint8";
    return "";
}

std::string dtypeToDescr(const std::string& dtype) {
    if (dtype == "float32") return "<f4";
    if (dtype == "int32") return "<i4";
    if (dtype == "int8") return "|i1";
    return "|u1";
}

// dictValue returns the text after 'key': in a .npy header dict.
std::string dictValue(const std::string& header, const std::string& key, const std::string& path) {
    std::string k = "'" + key + "'";
    size_t p = header.find(k);
    if (p == std::string::npos) fail(kExitUsage, path + ": .npy header has no " + k + ": " + header);
    p = header.find(':', p + k.size());
    if (p == std::string::npos) fail(kExitUsage, path + ": .npy header is malformed: " + header);
    p++;
    while (p < header.size() && header[p] == ' ') p++;
    return header.substr(p);
}

Npy readNpy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(kExitUsage, "cannot open input " + path + ": " + std::strerror(errno));
    std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0)
        fail(kExitUsage, path + ": not a .npy file (no \\x93NUMPY magic)");
    unsigned major = static_cast<unsigned char>(b[6]);
    size_t hlen, off;
    if (major == 1) {
        hlen = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (b.size() < 12) fail(kExitUsage, path + ": truncated .npy header");
        hlen = 0;
        for (int i = 0; i < 4; i++) hlen |= static_cast<size_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
        off = 12;
    } else {
        fail(kExitUsage, path + ": unsupported .npy version " + std::to_string(major));
    }
    if (off + hlen > b.size()) fail(kExitUsage, path + ": .npy header runs past the end of the file");
    std::string header(b.begin() + off, b.begin() + off + hlen);

    Npy n;
    std::string d = dictValue(header, "descr", path);
    if (d.empty() || d[0] != '\'') fail(kExitUsage, path + ": .npy descr is not a string: " + header);
    std::string descr = d.substr(1, d.find('\'', 1) - 1);
    n.dtype = descrToDtype(descr);
    if (n.dtype.empty())
        fail(kExitUsage, path + ": .npy dtype '" + descr + "' is not supported (want <f4, |i1, |u1 or <i4)");
    if (dictValue(header, "fortran_order", path).compare(0, 5, "False") != 0)
        fail(kExitUsage, path + ": .npy is in Fortran order; write it in C order");
    std::string s = dictValue(header, "shape", path);
    if (s.empty() || s[0] != '(') fail(kExitUsage, path + ": .npy shape is not a tuple: " + header);
    size_t close = s.find(')');
    if (close == std::string::npos) fail(kExitUsage, path + ": .npy shape is not closed: " + header);
    std::string dims = s.substr(1, close - 1);
    size_t count = 1;
    std::istringstream ds(dims);
    std::string tok;
    while (std::getline(ds, tok, ',')) {
        size_t a = tok.find_first_not_of(' '), z = tok.find_last_not_of(' ');
        if (a == std::string::npos) continue;  // the empty item after "(3,"
        tok = tok.substr(a, z - a + 1);
        char* end = nullptr;
        unsigned long v = std::strtoul(tok.c_str(), &end, 10);
        if (*end != '\0' || tok[0] == '-') fail(kExitUsage, path + ": bad .npy dimension '" + tok + "'");
        n.shape.push_back(static_cast<unsigned int>(v));
        count *= v;
    }
    size_t want = count * dtypeSize(n.dtype);
    size_t have = b.size() - off - hlen;
    if (have < want)
        fail(kExitUsage, path + ": .npy holds " + std::to_string(have) + " data bytes, shape " +
                             shapeText(n.shape) + " of " + n.dtype + " needs " + std::to_string(want));
    n.data.assign(b.begin() + off + hlen, b.begin() + off + hlen + want);
    return n;
}

void writeNpy(const std::string& path, const std::string& dtype, const std::vector<unsigned int>& shape,
              const char* data, size_t bytes) {
    std::ostringstream h;
    h << "{'descr': '" << dtypeToDescr(dtype) << "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); i++) h << (i ? ", " : "") << shape[i];
    if (shape.size() == 1) h << ",";
    h << "), }";
    std::string header = h.str();
    size_t total = 10 + header.size() + 1;
    header += std::string((64 - total % 64) % 64, ' ') + "\n";
    std::ofstream f(path, std::ios::binary);
    if (!f) fail(kExitOther, "cannot create output " + path + ": " + std::strerror(errno));
    char pre[10] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    pre[8] = static_cast<char>(header.size() & 0xff);
    pre[9] = static_cast<char>((header.size() >> 8) & 0xff);
    f.write(pre, 10);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    f.write(data, static_cast<std::streamsize>(bytes));
    if (!f) fail(kExitOther, "writing output " + path + " failed");
}

// ---- Arm NN ----------------------------------------------------------------

// npyDtype names the .npy dtype that holds a tensor of Arm NN type t, or ""
// when there is none we handle.
std::string npyDtype(armnn::DataType t) {
    switch (t) {
        case armnn::DataType::Float32: return "float32";
        case armnn::DataType::QAsymmS8:
        case armnn::DataType::QSymmS8: return "int8";
        case armnn::DataType::QAsymmU8:
        case armnn::DataType::Boolean: return "uint8";
        case armnn::DataType::Signed32: return "int32";
        default: return "";
    }
}

std::vector<unsigned int> dimsOf(const armnn::TensorInfo& info) {
    std::vector<unsigned int> d;
    for (unsigned int i = 0; i < info.GetNumDimensions(); i++) d.push_back(info.GetShape()[i]);
    return d;
}

std::vector<armnn::BackendId> chooseBackends(const std::string& flag) {
    std::string spec = flag;
    if (spec.empty()) {
        const char* env = std::getenv("SHORTCUT_ARMNN_BACKENDS");
        if (env != nullptr) spec = env;
    }
    std::vector<armnn::BackendId> out;
    if (spec.empty()) {
        if (armnn::BackendRegistryInstance().IsBackendRegistered("CpuAcc")) out.push_back("CpuAcc");
        out.push_back("CpuRef");
        return out;
    }
    std::istringstream s(spec);
    std::string tok;
    while (std::getline(s, tok, ',')) {
        if (tok.empty()) continue;
        if (!armnn::BackendRegistryInstance().IsBackendRegistered(tok))
            fail(kExitUsage, "backend " + tok + " is not available (registered: " +
                                 armnn::BackendRegistryInstance().GetBackendIdsAsString() + ")");
        out.push_back(tok);
    }
    if (out.empty()) fail(kExitUsage, "no backend named in '" + spec + "'");
    return out;
}

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Args {
    std::string model, outdir, backends;
    std::vector<std::string> inputs;
    int iters = 1;
};

Args parseArgs(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        std::string s = argv[i];
        auto next = [&](const char* what) -> std::string {
            if (i + 1 >= argc) fail(kExitUsage, s + " needs " + what);
            return argv[++i];
        };
        if (s == "--input") {
            // --input takes one or more paths, up to the next flag.
            a.inputs.push_back(next("a .npy path"));
            while (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) a.inputs.push_back(argv[++i]);
        } else if (s == "--outdir") {
            a.outdir = next("a directory");
        } else if (s == "--backends") {
            a.backends = next("a comma-separated backend list, e.g. CpuRef");
        } else if (s == "--iters") {
            a.iters = std::atoi(next("a count").c_str());
            if (a.iters < 1) fail(kExitUsage, "--iters must be at least 1");
        } else if (s == "-h" || s == "--help") {
            std::cout << "usage: armnn-run MODEL.tflite [--input IN.npy...] --outdir DIR [--backends CpuRef] [--iters N]\n";
            std::exit(0);
        } else if (s.compare(0, 2, "--") == 0) {
            fail(kExitUsage, "unknown flag " + s);
        } else if (a.model.empty()) {
            a.model = s;
        } else {
            fail(kExitUsage, "unexpected argument " + s + " (inputs go after --input)");
        }
    }
    if (a.model.empty()) fail(kExitUsage, "usage: armnn-run MODEL.tflite [--input IN.npy...] --outdir DIR");
    if (a.outdir.empty()) fail(kExitUsage, "--outdir is required");
    return a;
}

int run(int argc, char** argv) {
    Args a = parseArgs(argc, argv);
    armnn::ConfigureLogging(false, false, armnn::LogSeverity::Fatal);

    auto t0 = std::chrono::steady_clock::now();
    armnnTfLiteParser::ITfLiteParserPtr parser = armnnTfLiteParser::ITfLiteParser::Create();
    armnn::INetworkPtr net(nullptr, [](armnn::INetwork*) {});
    try {
        net = parser->CreateNetworkFromBinaryFile(a.model.c_str());
    } catch (const armnn::FileNotFoundException& e) {
        fail(kExitUsage, std::string("cannot read model: ") + e.what());
    } catch (const armnn::Exception& e) {
        fail(kExitRefused, std::string("TfLite parser: ") + e.what());
    }
    if (!net) fail(kExitRefused, "TfLite parser returned no network");

    std::vector<std::string> inNames = parser->GetSubgraphInputTensorNames(0);
    std::vector<std::string> outNames = parser->GetSubgraphOutputTensorNames(0);
    if (a.inputs.size() != inNames.size())
        fail(kExitUsage, "model has " + std::to_string(inNames.size()) + " inputs, " +
                             std::to_string(a.inputs.size()) + " .npy files given");

    std::vector<armnnTfLiteParser::BindingPointInfo> inBind, outBind;
    for (auto& n : inNames) inBind.push_back(parser->GetNetworkInputBindingInfo(0, n));
    for (auto& n : outNames) outBind.push_back(parser->GetNetworkOutputBindingInfo(0, n));

    // Read and check inputs before the (slow) optimizer runs.
    std::vector<Npy> inData;
    for (size_t i = 0; i < inNames.size(); i++) {
        Npy n = readNpy(a.inputs[i]);
        const armnn::TensorInfo& info = inBind[i].second;
        std::string want = npyDtype(info.GetDataType());
        if (want.empty())
            fail(kExitRefused, "input " + std::to_string(i) + " '" + inNames[i] + "' has Arm NN type " +
                                   armnn::GetDataTypeName(info.GetDataType()) + ", which armnn-run cannot feed");
        if (n.dtype != want || dimsOf(info) != n.shape)
            fail(kExitUsage, "input " + std::to_string(i) + " '" + inNames[i] + "' wants " + want + " " +
                                 shapeText(dimsOf(info)) + ", " + a.inputs[i] + " holds " + n.dtype + " " +
                                 shapeText(n.shape));
        inData.push_back(std::move(n));
    }

    armnn::IRuntime::CreationOptions ro;
    armnn::IRuntimePtr runtime = armnn::IRuntime::Create(ro);
    std::vector<armnn::BackendId> backends = chooseBackends(a.backends);
    std::string backendText;
    for (auto& b : backends) backendText += (backendText.empty() ? "" : ",") + b.Get();

    std::vector<std::string> messages;
    armnn::IOptimizedNetworkPtr opt(nullptr, [](armnn::IOptimizedNetwork*) {});
    try {
        opt = armnn::Optimize(*net, backends, runtime->GetDeviceSpec(), armnn::OptimizerOptions(),
                              armnn::Optional<std::vector<std::string>&>(messages));
    } catch (const armnn::Exception& e) {
        std::string m = e.what();
        for (auto& s : messages) m += "; " + s;
        fail(kExitRefused, "optimizer (" + backendText + "): " + m);
    }
    if (!opt) {
        std::string m;
        for (auto& s : messages) m += (m.empty() ? "" : "; ") + s;
        fail(kExitRefused, "optimizer (" + backendText + "): " + m);
    }

    armnn::NetworkId id;
    std::string loadErr;
    if (runtime->LoadNetwork(id, std::move(opt), loadErr) != armnn::Status::Success)
        fail(kExitRefused, "loading the network (" + backendText + "): " + loadErr);
    double loadMs = msSince(t0);

    armnn::InputTensors inputs;
    for (size_t i = 0; i < inData.size(); i++)
        inputs.emplace_back(inBind[i].first, armnn::ConstTensor(inBind[i].second, inData[i].data.data()));
    std::vector<std::vector<char>> outData(outBind.size());
    armnn::OutputTensors outputs;
    for (size_t i = 0; i < outBind.size(); i++) {
        if (npyDtype(outBind[i].second.GetDataType()).empty())
            fail(kExitRefused, "output " + std::to_string(i) + " '" + outNames[i] + "' has Arm NN type " +
                                   armnn::GetDataTypeName(outBind[i].second.GetDataType()) +
                                   ", which armnn-run cannot write");
        outData[i].assign(outBind[i].second.GetNumBytes(), 0);
        outputs.emplace_back(outBind[i].first, armnn::Tensor(outBind[i].second, outData[i].data()));
    }

    double best = 0, total = 0;
    for (int it = 0; it < a.iters; it++) {
        auto t1 = std::chrono::steady_clock::now();
        if (runtime->EnqueueWorkload(id, inputs, outputs) != armnn::Status::Success)
            fail(kExitOther, "EnqueueWorkload failed on " + backendText);
        double ms = msSince(t1);
        total += ms;
        if (it == 0 || ms < best) best = ms;
    }

    for (size_t i = 0; i < outBind.size(); i++) {
        const armnn::TensorInfo& info = outBind[i].second;
        std::string dt = npyDtype(info.GetDataType());
        std::string path = a.outdir + "/output_" + std::to_string(i) + ".npy";
        writeNpy(path, dt, dimsOf(info), outData[i].data(), outData[i].size());
        std::cout << "output " << i << " " << outNames[i] << " " << dt << " " << shapeText(dimsOf(info));
        if (info.IsQuantized()) {
            std::cout << " scale=" << info.GetQuantizationScale() << " zero_point=" << info.GetQuantizationOffset();
        }
        std::cout << "\n";
    }
    std::cout << "backends " << backendText << " load_ms " << loadMs << " infer_ms " << total / a.iters
              << " min_ms " << best << " iters " << a.iters << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const Failure& f) {
        std::cerr << "armnn-run: " << oneLine(f.msg) << std::endl;
        return f.code;
    } catch (const armnn::Exception& e) {
        std::cerr << "armnn-run: Arm NN: " << oneLine(e.what()) << std::endl;
        return kExitOther;
    } catch (const std::exception& e) {
        std::cerr << "armnn-run: " << oneLine(e.what()) << std::endl;
        return kExitOther;
    }
}
