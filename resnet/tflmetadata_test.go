package resnet

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
	"github.com/shortcut-edge/shortcut/resnet/internal/tflmeta"
)

// metadataEntry returns the buffer of the Model.metadata entry called name
// in a .tflite file, or nil.
func metadataEntry(t testing.TB, data []byte, name string) []byte {
	t.Helper()
	fm := tflfb.GetRootAsModel(data, 0)
	var fe tflfb.Metadata
	var fb tflfb.Buffer
	for i := range fm.MetadataLength() {
		fm.Metadata(&fe, i)
		if string(fe.Name()) == name {
			fm.Buffers(&fb, int(fe.Buffer()))
			return fb.DataBytes()
		}
	}
	return nil
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6*math.Max(1, math.Abs(float64(b))) }

func nearAll(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Contract: Marshal writes the standard TFLite metadata (TFLITE_METADATA
// with labels and normalization, labels.txt in a ZIP after the model) next
// to shortcut.meta, and Load gives back the same Meta.
func TestTFLiteMetadataRoundTrip(t *testing.T) {
	m := testModel()
	data := mustMarshal(t, m)
	got, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Meta, m.Meta) {
		t.Fatalf("Meta = %+v, want %+v", got.Meta, m.Meta)
	}

	buf := metadataEntry(t, data, MetaTFLite)
	if buf == nil {
		t.Fatal("no TFLITE_METADATA entry")
	}
	if id := string(buf[4:8]); id != "M001" {
		t.Fatalf("identifier %q, want M001", id)
	}
	mm := tflmeta.GetRootAsModelMetadata(buf, 0).UnPack()
	if mm.Name != "test" || mm.Version != "0.1" || mm.MinParserVersion != "1.0.0" || len(mm.SubgraphMetadata) != 1 {
		t.Fatalf("ModelMetadata = %+v", mm)
	}
	sg := mm.SubgraphMetadata[0]
	if len(sg.InputTensorMetadata) != 1 || len(sg.OutputTensorMetadata) != 1 {
		t.Fatalf("%d input and %d output tensor metadata, want 1 and 1",
			len(sg.InputTensorMetadata), len(sg.OutputTensorMetadata))
	}
	in := sg.InputTensorMetadata[0]
	if in.Name != "image" {
		t.Errorf("input name %q, want image", in.Name)
	}
	if cp := in.Content.ContentProperties; cp.Type != tflmeta.ContentPropertiesImageProperties ||
		cp.Value.(*tflmeta.ImagePropertiesT).ColorSpace != tflmeta.ColorSpaceTypeRGB {
		t.Errorf("input content %+v, want RGB ImageProperties", cp)
	}
	if len(in.ProcessUnits) != 1 || in.ProcessUnits[0].Options.Type != tflmeta.ProcessUnitOptionsNormalizationOptions {
		t.Fatalf("input process units %+v, want one NormalizationOptions", in.ProcessUnits)
	}
	norm := in.ProcessUnits[0].Options.Value.(*tflmeta.NormalizationOptionsT)
	// 0..255 pixel scale: mean*255 and std*255.
	if want := []float32{123.675, 116.28, 103.53}; !nearAll(norm.Mean, want) {
		t.Errorf("mean %v, want %v", norm.Mean, want)
	}
	if want := []float32{58.395, 57.12, 57.375}; !nearAll(norm.Std, want) {
		t.Errorf("std %v, want %v", norm.Std, want)
	}
	out := sg.OutputTensorMetadata[0]
	if out.Name != "scores" || len(out.AssociatedFiles) != 1 || out.AssociatedFiles[0].Name != "labels.txt" ||
		out.AssociatedFiles[0].Type != tflmeta.AssociatedFileTypeTENSOR_AXIS_LABELS {
		t.Fatalf("output metadata %+v, files %+v", out, out.AssociatedFiles)
	}

	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("no ZIP after the model: %v", err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "labels.txt" || zr.File[0].Method != zip.Store {
		t.Fatalf("ZIP files %+v, want stored labels.txt alone", zr.File)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cat\ndog\ndüne \"quoted\"\n"; string(text) != want {
		t.Fatalf("labels.txt = %q, want %q", text, want)
	}

	// Marshal is deterministic, ZIP included.
	if again := mustMarshal(t, got); !bytes.Equal(again, data) {
		t.Fatal("Marshal(Load(Marshal(m))) differs from Marshal(m)")
	}
}

func TestTFLiteMetadataIsWrittenOnlyForLabelsOrNormalization(t *testing.T) {
	m := testModel()
	m.Meta = Metadata{Name: "n", Version: "1", OutputNames: []string{"scores"}}
	data := mustMarshal(t, m)
	if metadataEntry(t, data, MetaTFLite) != nil {
		t.Fatal("TFLITE_METADATA written without labels or normalization")
	}
	if _, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("ZIP appended without labels")
	}

	// Normalization alone: TFLITE_METADATA without associated files.
	m.Meta = Metadata{Mean: []float32{0.5}, Std: []float32{0.25}}
	data = mustMarshal(t, m)
	mm := tflmeta.GetRootAsModelMetadata(metadataEntry(t, data, MetaTFLite), 0).UnPack()
	norm := mm.SubgraphMetadata[0].InputTensorMetadata[0].ProcessUnits[0].Options.Value.(*tflmeta.NormalizationOptionsT)
	if !nearAll(norm.Mean, []float32{127.5}) || !nearAll(norm.Std, []float32{63.75}) {
		t.Fatalf("normalization %+v", norm)
	}
	if _, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("ZIP appended without labels")
	}
}

// Load accepts bytes after the flatbuffer that are not a ZIP.
func TestLoadAcceptsTrailingBytes(t *testing.T) {
	m := testModel()
	m.Meta = Metadata{}
	data := append(mustMarshal(t, m), bytes.Repeat([]byte("trailing junk "), 100)...)
	if _, err := Load(data); err != nil {
		t.Fatal(err)
	}
}

// tflOnlyFile is testModel written with meta as its only metadata besides
// min_runtime_version (no shortcut.meta), followed by tail(model).
func tflOnlyFile(t testing.TB, meta []byte, tail func(model []byte) []byte) []byte {
	t.Helper()
	mt := tflfb.GetRootAsModel(mustMarshal(t, testModel()), 0).UnPack()
	var entries []*tflfb.MetadataT
	for _, e := range mt.Metadata {
		switch e.Name {
		case MetaShortcut:
		case MetaTFLite:
			mt.Buffers[e.Buffer].Data = meta
			entries = append(entries, e)
		default:
			entries = append(entries, e)
		}
	}
	mt.Metadata = entries
	data := packModel(mt, true)
	if tail != nil {
		data = tail(data)
	}
	return data
}

// classifierMeta is a ModelMetadata as another tool might write it:
// normalization (mean, std) on the input, a labels file on output 0.
func classifierMeta(mean, std []float32, labels string) []byte {
	out := &tflmeta.TensorMetadataT{Name: "probability"}
	if labels != "" {
		out.AssociatedFiles = []*tflmeta.AssociatedFileT{
			{Name: "readme.txt", Type: tflmeta.AssociatedFileTypeDESCRIPTIONS},
			{Name: labels, Type: tflmeta.AssociatedFileTypeTENSOR_AXIS_LABELS},
		}
	}
	mm := &tflmeta.ModelMetadataT{
		Name: "foreign", Version: "v2", MinParserVersion: "1.0.0",
		SubgraphMetadata: []*tflmeta.SubGraphMetadataT{{
			InputTensorMetadata: []*tflmeta.TensorMetadataT{{Name: "image",
				ProcessUnits: []*tflmeta.ProcessUnitT{{Options: &tflmeta.ProcessUnitOptionsT{
					Type:  tflmeta.ProcessUnitOptionsNormalizationOptions,
					Value: &tflmeta.NormalizationOptionsT{Mean: mean, Std: std}}}}}},
			OutputTensorMetadata: []*tflmeta.TensorMetadataT{out},
		}},
	}
	b := flatbuffers.NewBuilder(256)
	b.FinishWithFileIdentifier(mm.Pack(b), []byte("M001"))
	return b.FinishedBytes()
}

// zipTail appends a ZIP with the given files (name, contents pairs) the
// way another tool might: deflated, offsets relative to the archive.
func zipTail(method uint16, files ...string) func([]byte) []byte {
	return func(model []byte) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for i := 0; i+1 < len(files); i += 2 {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: files[i], Method: method})
			if err != nil {
				panic(err)
			}
			w.Write([]byte(files[i+1]))
		}
		if err := zw.Close(); err != nil {
			panic(err)
		}
		return append(model, b.Bytes()...)
	}
}

// Contract: a file whose only metadata is TFLITE_METADATA (as written by
// TFLite Support) gets its labels, normalization and output names from it.
func TestTFLiteMetadataAloneGivesMeta(t *testing.T) {
	t.Run("our own writer", func(t *testing.T) {
		m := testModel()
		text, _ := labelsText(m.Meta.Labels)
		buf, _ := tfliteMetadata(m)
		data := tflOnlyFile(t, buf, func(model []byte) []byte {
			out, err := appendAssociatedFiles(model, []associatedFile{{labelsFile, text}})
			if err != nil {
				t.Fatal(err)
			}
			return out
		})
		if metadataEntry(t, data, MetaShortcut) != nil {
			t.Fatal("test file still has shortcut.meta")
		}
		got, err := Load(data)
		if err != nil {
			t.Fatal(err)
		}
		want := m.Meta
		if got.Meta.Name != want.Name || got.Meta.Version != want.Version ||
			!reflect.DeepEqual(got.Meta.Labels, want.Labels) || !reflect.DeepEqual(got.Meta.OutputNames, want.OutputNames) ||
			!nearAll(got.Meta.Mean, want.Mean) || !nearAll(got.Meta.Std, want.Std) {
			t.Fatalf("Meta = %+v, want %+v", got.Meta, want)
		}
	})
	t.Run("another tool", func(t *testing.T) {
		data := tflOnlyFile(t, classifierMeta([]float32{127.5}, []float32{127.5}, "labels_en.txt"),
			zipTail(zip.Deflate, "readme.txt", "hello", "labels_en.txt", "background\r\nplane\r\n\r\n"))
		got, err := Load(data)
		if err != nil {
			t.Fatal(err)
		}
		want := Metadata{Name: "foreign", Version: "v2", Labels: []string{"background", "plane", ""},
			Mean: []float32{0.5}, Std: []float32{0.5}, OutputNames: []string{"probability"}}
		if !reflect.DeepEqual(got.Meta, want) {
			t.Fatalf("Meta = %+v, want %+v", got.Meta, want)
		}
	})
	t.Run("per-channel std, one mean", func(t *testing.T) {
		data := tflOnlyFile(t, classifierMeta([]float32{0}, []float32{255, 127.5, 51}, ""), nil)
		got, err := Load(data)
		if err != nil {
			t.Fatal(err)
		}
		if !nearAll(got.Meta.Mean, []float32{0, 0, 0}) || !nearAll(got.Meta.Std, []float32{1, 0.5, 0.2}) || got.Meta.Labels != nil {
			t.Fatalf("Meta = %+v", got.Meta)
		}
	})
}

// tflBrokenCases are files with a faulty TFLITE_METADATA or ZIP, and what
// Load must say about each.
var tflBrokenCases = []struct {
	name string
	make func(t testing.TB) []byte
	want string
}{
	{"tflmeta-not-modelmetadata", func(t testing.TB) []byte {
		return tflOnlyFile(t, []byte("anything, but not metadata"), nil)
	}, `"TFLITE_METADATA": file identifier is "hing"`},
	{"tflmeta-too-short", func(t testing.TB) []byte { return tflOnlyFile(t, []byte("M001"), nil) }, "too short"},
	{"tflmeta-truncated", func(t testing.TB) []byte {
		b := classifierMeta([]float32{1}, []float32{2}, "labels.txt")
		return tflOnlyFile(t, b[:len(b)-20], nil)
	}, "malformed ModelMetadata flatbuffer"},
	{"tflmeta-root-past-end", func(t testing.TB) []byte {
		b := classifierMeta([]float32{1}, []float32{2}, "labels.txt")
		b[0], b[1], b[2], b[3] = 0xff, 0xff, 0, 0
		return tflOnlyFile(t, b, nil)
	}, "root offset 65535 points past the end"},
	{"tflmeta-normalization-mismatch", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta([]float32{1, 2, 3}, []float32{1, 2}, ""), nil)
	}, "normalization has 3 mean and 2 std values"},
	{"tflmeta-zero-std", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta([]float32{1}, []float32{0}, ""), nil)
	}, "std[0] is 0"},
	{"tflmeta-labels-without-zip", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"), nil)
	}, "no ZIP archive appended"},
	{"tflmeta-labels-missing-from-zip", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"), zipTail(zip.Store, "other.txt", "a\n"))
	}, `"labels.txt" is named by the metadata but missing from the appended ZIP`},
	{"tflmeta-zip-truncated", func(t testing.TB) []byte {
		d := tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"), zipTail(zip.Store, "labels.txt", "a\nb\nc\n"))
		return d[:len(d)-1]
	}, "malformed file"},
	{"tflmeta-zip-bad-crc", func(t testing.TB) []byte {
		d := tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"), zipTail(zip.Store, "labels.txt", "a\nb\nc\n"))
		i := bytes.LastIndex(d, []byte("a\nb\nc\n"))
		d[i] = 'x'
		return d
	}, "checksum error"},
	{"tflmeta-labels-too-big", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"),
			zipTail(zip.Deflate, "labels.txt", strings.Repeat("x", maxLabelsBytes+1)))
	}, "more than the 1048576 accepted"},
	{"tflmeta-too-many-labels", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"),
			zipTail(zip.Deflate, "labels.txt", strings.Repeat("\n", maxLabels+1)))
	}, "100001 labels, more than the 100000 accepted"},
	{"tflmeta-labels-not-utf8", func(t testing.TB) []byte {
		return tflOnlyFile(t, classifierMeta(nil, nil, "labels.txt"), zipTail(zip.Store, "labels.txt", "caf\xe9\n"))
	}, "not UTF-8"},
	{"tflmeta-damaged-zip-next-to-shortcut-meta", func(t testing.TB) []byte {
		d := mustMarshal(t, testModel())
		i := bytes.LastIndex(d, []byte("cat\ndog"))
		d[i] = 'b'
		return d
	}, "checksum error"},
}

func TestTFLiteMetadataBrokenFilesGiveErrors(t *testing.T) {
	for _, bc := range tflBrokenCases {
		t.Run(bc.name, func(t *testing.T) {
			m, err := Load(bc.make(t))
			if err == nil {
				t.Fatalf("Load accepted the file: Meta %+v", m.Meta)
			}
			if !strings.Contains(err.Error(), bc.want) || strings.Contains(err.Error(), "internal error") {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, bc.want)
			}
		})
	}
}

// With shortcut.meta present, TFLITE_METADATA is only cross-checked: a
// ZIP dropped by a tool that rewrote the flatbuffer is fine.
func TestTFLiteMetadataZipMayBeMissingNextToShortcutMeta(t *testing.T) {
	data := mustMarshal(t, testModel())
	rewritten := packModel(tflfb.GetRootAsModel(data, 0).UnPack(), true)
	if _, err := zip.NewReader(bytes.NewReader(rewritten), int64(len(rewritten))); err == nil {
		t.Fatal("rewritten file still has a ZIP")
	}
	m, err := Load(rewritten)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Meta, testModel().Meta) {
		t.Fatalf("Meta = %+v", m.Meta)
	}
}

func TestLabelsTextRoundTrip(t *testing.T) {
	for _, labels := range [][]string{{""}, {"a", ""}, {"", "b"}, {"x y", "ü"}} {
		text, ok := labelsText(labels)
		if !ok {
			t.Fatal("labelsText refused")
		}
		got, err := parseLabels(text)
		if err != nil || !reflect.DeepEqual(got, labels) {
			t.Errorf("%q: parsed %q, %v", labels, got, err)
		}
	}
	if text, _ := labelsText([]string{"a\nb", "c\r\nd"}); string(text) != "a b\nc d\n" {
		t.Errorf("line breaks in labels: %q", text)
	}
	if _, ok := labelsText(make([]string, maxLabels+1)); ok {
		t.Error("labelsText accepted more labels than the reader does")
	}
	if _, ok := labelsText([]string{strings.Repeat("x", maxLabelsBytes)}); ok {
		t.Error("labelsText accepted more bytes than the reader does")
	}
}

// TestTFLiteMetadataFuzzSeeds keeps files with TFLITE_METADATA in the
// FuzzLoad corpus; -update (see load_test.go) writes them.
//
//	go test ./resnet -run TestTFLiteMetadataFuzzSeeds -update
func TestTFLiteMetadataFuzzSeeds(t *testing.T) {
	seeds := map[string][]byte{
		"tflmeta-valid-only": tflOnlyFile(t, classifierMeta([]float32{127.5}, []float32{127.5}, "labels.txt"),
			zipTail(zip.Store, "labels.txt", "a\nb\nc\n")),
		"tflmeta-with-shortcut-meta": mustMarshal(t, testModel()),
	}
	for _, bc := range tflBrokenCases {
		if bc.name == "tflmeta-zip-bad-crc" || bc.name == "tflmeta-truncated" {
			seeds[bc.name] = bc.make(t)
		}
	}
	for name, data := range seeds {
		p := filepath.Join("testdata", "fuzz", "FuzzLoad", name)
		if *update {
			entry := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(p, []byte(entry), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("fuzz seed %s is missing (run go test ./resnet -run TestTFLiteMetadataFuzzSeeds -update): %v", name, err)
		}
	}
}

// witnessModel is a small int8 model the real TFLite runs: QUANTIZE, a
// 3x3 CONV_2D with per-channel weights, DEQUANTIZE; float input and output.
func witnessModel() *Model {
	const h, w, cin, cout = 5, 5, 3, 4
	weights := make([]byte, cout*3*3*cin)
	for i := range weights {
		weights[i] = byte(int8(i*37%255 - 127))
	}
	wScale := []float32{0.004, 0.008, 0.012, 0.016}
	bScale := make([]float32, cout)
	for c := range bScale {
		bScale[c] = 0.05 * wScale[c]
	}
	zeros := make([]int64, cout)
	return &Model{
		Tensors: []Tensor{
			{Name: "image", Type: Float32, Shape: []int{1, h, w, cin}},
			{Name: "image_q", Type: Int8, Shape: []int{1, h, w, cin}, Quant: perTensor(0.05, -3)},
			{Name: "filter", Type: Int8, Shape: []int{cout, 3, 3, cin}, Data: weights, Quant: &Quant{Scale: wScale, ZeroPoint: zeros}},
			{Name: "bias", Type: Int32, Shape: []int{cout}, Data: int32Data(100, -200, 300, -400), Quant: &Quant{Scale: bScale, ZeroPoint: zeros}},
			{Name: "conv_q", Type: Int8, Shape: []int{1, h, w, cout}, Quant: perTensor(0.1, -128)},
			{Name: "scores", Type: Float32, Shape: []int{1, h, w, cout}},
		},
		Operators: []Operator{
			{Op: OpQuantize, Version: 2, Inputs: []int{0}, Outputs: []int{1}},
			{Op: OpConv2D, Version: 3, Inputs: []int{1, 2, 3}, Outputs: []int{4},
				Options: &Conv2DOptions{Padding: PaddingSame, StrideW: 1, StrideH: 1, Activation: ActRelu}},
			{Op: OpDequantize, Version: 2, Inputs: []int{4}, Outputs: []int{5}},
		},
		Inputs:  []int{0},
		Outputs: []int{5},
	}
}

// Contract: a model with TFLITE_METADATA and the ZIP after it still loads
// and runs in the real TFLite, with the same outputs as without them.
func TestTFLiteMetadataModelRunsInRealTFLite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts node to run the real TFLite")
	}
	if err := witness.Available(); err != nil {
		t.Fatalf("the TFLite witness cannot run (make setup installs it): %v", err)
	}
	dir := t.TempDir()
	with := witnessModel()
	with.Meta = Metadata{Name: "witness", Version: "1", Labels: []string{"a", "b", "c", "d"},
		Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}, OutputNames: []string{"scores"}}
	models := map[string][]byte{"with": mustMarshal(t, with), "without": mustMarshal(t, witnessModel())}
	if _, err := zip.NewReader(bytes.NewReader(models["with"]), int64(len(models["with"]))); err != nil {
		t.Fatalf("test model has no ZIP: %v", err)
	}
	image := make([]float32, 5*5*3)
	for i := range image {
		image[i] = float32(i%17)/4 - 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, engine := range []witness.Engine{witness.LiteRT, witness.TFJS} {
		outs := map[string][]float32{}
		for name, data := range models {
			p := filepath.Join(dir, name+".tflite")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := witness.Infer(ctx, p, engine, 1, witness.Array{Shape: []int{1, 5, 5, 3}, Data: image})
			if err != nil {
				t.Fatalf("%s, model %s: %v", engine, name, err)
			}
			outs[name] = res[0].Data.([]float32)
		}
		nonzero := 0
		for _, v := range outs["with"] {
			if v != 0 {
				nonzero++
			}
		}
		if !reflect.DeepEqual(outs["with"], outs["without"]) || len(outs["with"]) != 5*5*4 || nonzero == 0 {
			t.Errorf("%s: outputs with metadata %v, without %v", engine, outs["with"], outs["without"])
		}
	}
}
