// Package npy reads and writes NumPy .npy files holding the tensors that move
// between Shortcut and the TFLite witness (tools/tflite-node): little-endian
// float32, int32, int8 and uint8 arrays in C order, with their shape.
//
// It reads format versions 1.0, 2.0 and 3.0 and writes 1.0.
//
// Why our own and not github.com/sbinet/npyio (v0.6.0, the version the proxy
// serves; it stays in go.mod as an independent reader in the tests): these files
// come from users (`shortcut-train infer --input`), and measured on npyio's
// Reader, a header without its closing newline panics (slice bounds out of
// range), a version-2 header length is allocated before a byte of it is read
// (a 12-byte file asks for up to 4 GiB), and version 3.0 files are refused. Its
// Writer takes an N-dimensional shape only from nested slices, while every
// caller here holds a flat tensor and a shape. TestMalformedHeadersThatCrashNpyio
// keeps the first two cases; FuzzDecode the rest.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var magic = []byte("\x93NUMPY")

// Write stores data ([]float32, []int32, []int8 or []uint8) with the given shape
// in a .npy file at path. The product of shape must equal len(data).
func Write(path string, shape []int, data any) error {
	var buf bytes.Buffer
	if err := Encode(&buf, shape, data); err != nil {
		return fmt.Errorf("npy %s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// Encode writes a .npy image of data with the given shape to w.
func Encode(w io.Writer, shape []int, data any) error {
	descr, n, body, err := raw(data)
	if err != nil {
		return err
	}
	count := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", shape)
		}
		count *= d
	}
	if count != n {
		return fmt.Errorf("shape %v needs %d elements, data has %d", shape, count, n)
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	shapeText := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		shapeText = "(" + dims[0] + ",)"
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shapeText)
	// magic(6) + version(2) + length(2) + header + '\n' is padded to 64 bytes.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("header of %d bytes is too long for .npy version 1.0", len(header))
	}
	pre := make([]byte, 10)
	copy(pre, magic)
	pre[6], pre[7] = 1, 0
	binary.LittleEndian.PutUint16(pre[8:], uint16(len(header)))
	for _, part := range [][]byte{pre, []byte(header), body} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

func raw(data any) (descr string, n int, body []byte, err error) {
	switch v := data.(type) {
	case []float32:
		body = make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(body[4*i:], math.Float32bits(x))
		}
		return "<f4", len(v), body, nil
	case []int32:
		body = make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(body[4*i:], uint32(x))
		}
		return "<i4", len(v), body, nil
	case []int8:
		body = make([]byte, len(v))
		for i, x := range v {
			body[i] = byte(x)
		}
		return "|i1", len(v), body, nil
	case []uint8:
		return "|u1", len(v), append([]byte(nil), v...), nil
	default:
		return "", 0, nil, fmt.Errorf("cannot store %T: want []float32, []int32, []int8 or []uint8", data)
	}
}

// Read loads a .npy file. data is []float32, []int32, []int8 or []uint8.
func Read(path string) (shape []int, data any, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	shape, data, err = Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("npy %s: %w", path, err)
	}
	return shape, data, nil
}

var (
	descrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// Decode parses a whole .npy file image.
func Decode(b []byte) (shape []int, data any, err error) {
	if len(b) < 10 || !bytes.Equal(b[:6], magic) {
		return nil, nil, fmt.Errorf("not a .npy file (missing \\x93NUMPY magic)")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, nil, fmt.Errorf("truncated header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return nil, nil, fmt.Errorf("unsupported format version %d.%d", b[6], b[7])
	}
	if off+hlen > len(b) {
		return nil, nil, fmt.Errorf("header length %d runs past the end of the %d-byte file", hlen, len(b))
	}
	header := string(b[off : off+hlen])
	d, f, s := descrRe.FindStringSubmatch(header), fortranRe.FindStringSubmatch(header), shapeRe.FindStringSubmatch(header)
	if d == nil || f == nil || s == nil {
		return nil, nil, fmt.Errorf("cannot parse header %q", header)
	}
	if f[1] == "True" {
		return nil, nil, fmt.Errorf("fortran_order True is not supported; save in C order")
	}
	count := 1
	shape = []int{}
	for _, p := range strings.Split(s[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return nil, nil, fmt.Errorf("bad shape (%s)", s[1])
		}
		shape = append(shape, v)
		// No tensor can hold more elements than the file has bytes: stop
		// before the product overflows into a small number that would match.
		if v != 0 && count > len(b)/v {
			return nil, nil, fmt.Errorf("shape (%s) needs more elements than the %d-byte file holds", s[1], len(b))
		}
		count *= v
	}
	body := b[off+hlen:]
	size := map[string]int{"<f4": 4, "<i4": 4, "|i1": 1, "<i1": 1, "|u1": 1, "<u1": 1}[d[1]]
	if size == 0 {
		return nil, nil, fmt.Errorf("dtype %s is not supported (want <f4, <i4, |i1 or |u1)", d[1])
	}
	if len(body) != count*size {
		return nil, nil, fmt.Errorf("shape %v of %s needs %d data bytes, file has %d", shape, d[1], count*size, len(body))
	}
	switch d[1] {
	case "<f4":
		v := make([]float32, count)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
		return shape, v, nil
	case "<i4":
		v := make([]int32, count)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(body[4*i:]))
		}
		return shape, v, nil
	case "|i1", "<i1":
		v := make([]int8, count)
		for i := range v {
			v[i] = int8(body[i])
		}
		return shape, v, nil
	default:
		return shape, append([]uint8(nil), body...), nil
	}
}
