package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// Safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
// "__metadata__": {string: string}}, then the raw little-endian tensor data; offsets count
// from the end of the header. Our own reader and writer, enough for weight import.

// SafeTensor is one tensor of a safetensors file, still in its stored dtype.
type SafeTensor struct {
	DType string
	Shape []int
	raw   []byte
}

// SafetensorsFile is a parsed safetensors file.
type SafetensorsFile struct {
	Path     string
	Tensors  map[string]SafeTensor
	Metadata map[string]string
}

// Names returns the tensor names, sorted.
func (f *SafetensorsFile) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dtypeSize gives the bytes per element of the safetensors dtypes.
var dtypeSize = map[string]int{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
	"U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

// maxHeader bounds the JSON header (the format's own limit is 100 MB).
const maxHeader = 100 << 20

// ReadSafetensors reads and checks a whole safetensors file.
func ReadSafetensors(path string) (*SafetensorsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := ParseSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// ParseSafetensors parses the bytes of a safetensors file; the tensors share b.
func ParseSafetensors(b []byte) (*SafetensorsFile, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%d bytes: too short for the 8-byte header length; not a safetensors file", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d does not fit the %d-byte file; not a safetensors file (or truncated)", n, len(b))
	}
	header := b[8 : 8+n]
	if len(bytes.TrimSpace(header)) == 0 || bytes.TrimSpace(header)[0] != '{' {
		return nil, fmt.Errorf("header does not start with a JSON object; not a safetensors file")
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(header, &entries); err != nil {
		return nil, fmt.Errorf("header JSON: %w", err)
	}
	body := b[8+n:]
	f := &SafetensorsFile{Tensors: map[string]SafeTensor{}}
	for name, raw := range entries {
		if name == "__metadata__" {
			if err := json.Unmarshal(raw, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__: want an object of strings: %w", err)
			}
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] > e.Offsets[1] || e.Offsets[1] > uint64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data_offsets %v outside the %d data bytes", name, e.Offsets, len(body))
		}
		count := uint64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", name, e.Shape)
			}
			count *= uint64(d)
		}
		if got := e.Offsets[1] - e.Offsets[0]; got != count*uint64(size) {
			return nil, fmt.Errorf("tensor %q: %s %v needs %d bytes, data_offsets give %d", name, e.DType, e.Shape,
				count*uint64(size), got)
		}
		if e.Shape == nil {
			e.Shape = []int{}
		}
		f.Tensors[name] = SafeTensor{DType: e.DType, Shape: e.Shape, raw: body[e.Offsets[0]:e.Offsets[1]]}
	}
	return f, nil
}

// Float32 converts the tensor to float32 (from F32, F16, BF16 or F64).
func (t SafeTensor) Float32() ([]float32, error) {
	switch t.DType {
	case "F32":
		v := make([]float32, len(t.raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.raw[4*i:]))
		}
		return v, nil
	case "F64":
		v := make([]float32, len(t.raw)/8)
		for i := range v {
			v[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.raw[8*i:])))
		}
		return v, nil
	case "F16":
		v := make([]float32, len(t.raw)/2)
		for i := range v {
			v[i] = halfToFloat(binary.LittleEndian.Uint16(t.raw[2*i:]))
		}
		return v, nil
	case "BF16":
		v := make([]float32, len(t.raw)/2)
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.raw[2*i:])) << 16)
		}
		return v, nil
	}
	return nil, fmt.Errorf("dtype %s is not a float type (want F32, F16, BF16 or F64)", t.DType)
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac * 2^-24
		v := float32(frac) * float32(math.Ldexp(1, -24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// floatToHalf converts to binary16, rounding to nearest even; out-of-range values become inf.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	frac := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		m := frac | 0x800000
		shift := uint32(14 - exp)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(h)
}

// NamedTensor is a float tensor to write.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// WriteSafetensors writes the tensors in dtype "F32", "F16" or "BF16" (BF16 truncates).
func WriteSafetensors(path string, ts []NamedTensor, dtype string, metadata map[string]string) error {
	size := map[string]int{"F32": 4, "F16": 2, "BF16": 2}[dtype]
	if size == 0 {
		return fmt.Errorf("safetensors: cannot write dtype %q (use F32, F16 or BF16)", dtype)
	}
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var body []byte
	for _, t := range ts {
		if prod(t.Shape) != len(t.Data) {
			return fmt.Errorf("safetensors: tensor %s has %d values for shape %v", t.Name, len(t.Data), t.Shape)
		}
		begin := len(body)
		for _, v := range t.Data {
			switch dtype {
			case "F32":
				body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
			case "F16":
				body = binary.LittleEndian.AppendUint16(body, floatToHalf(v))
			case "BF16":
				body = binary.LittleEndian.AppendUint16(body, uint16(math.Float32bits(v)>>16))
			}
		}
		header[t.Name] = map[string]any{"dtype": dtype, "shape": t.Shape, "data_offsets": []int{begin, len(body)}}
	}
	js, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 { // the reference writer pads the header with spaces to 8-byte alignment
		js = append(js, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	out = append(append(out, js...), body...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
