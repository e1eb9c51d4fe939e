package resnet

// The standard TFLite metadata for image classifiers (TensorFlow Lite
// Support's metadata_schema.fbs, reduced to what we use in
// schema/metadata.fbs), written next to our own "shortcut.meta" so that
// other tools (MetadataExtractor, the Android ImageClassifier, Netron) see
// the labels and the input normalization:
//
//   - Model.metadata entry "TFLITE_METADATA": a ModelMetadata flatbuffer
//     (file identifier "M001") with one SubGraphMetadata. Input 0 is
//     described as "image" (ImageProperties, RGB or GRAYSCALE by channel
//     count) with a NormalizationOptions process unit; the class-score
//     output names the associated file "labels.txt" (TENSOR_AXIS_LABELS).
//   - The associated files are stored in a ZIP archive appended after the
//     flatbuffer. TFLite loaders ignore those trailing bytes; the ZIP's
//     offsets count from the start of the whole .tflite file, as for a
//     self-extracting archive.
//
// Reading: Load uses the first TFLITE_METADATA entry only when the file has
// no shortcut.meta; labels come from the appended ZIP's labels.txt and the
// normalization is converted back to our scale. A broken TFLITE_METADATA
// buffer, or a missing or damaged ZIP when it names a labels file, is then
// an error rather than something to skip: the files we write are always
// well-formed, so a damaged one is most likely truncated or corrupted, and
// skipping would lose the labels silently. When shortcut.meta is present,
// TFLITE_METADATA is only cross-checked (see readTFLiteMetadata). Reading
// allocates a bounded amount: the flatbuffer goes through the verifier of
// load.go, labels.txt is at most 1 MiB and 100k labels, and only one
// labels file is read per Load.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflmeta"
)

const (
	// tflMetaIdentifier is the file identifier of ModelMetadata buffers.
	tflMetaIdentifier = "M001"
	// tflMinParserVersion is the oldest metadata parser that understands
	// every field we set (all of them exist since schema version 1.0.0).
	tflMinParserVersion = "1.0.0"
	// labelsFile is the associated file holding Labels, one per line.
	labelsFile = "labels.txt"
	// maxLabelsBytes and maxLabels bound what reading labels.txt may
	// allocate. Marshal leaves out a labels file that exceeds them.
	maxLabelsBytes = 1 << 20
	maxLabels      = 100_000
	// pixelScale converts between our 0..1 pixel scale and the 0..255 one
	// of the convention.
	pixelScale = 255
)

// associatedFile is one file of the ZIP archive appended to the model.
type associatedFile struct {
	name string
	data []byte
}

// wantsTFLiteMetadata reports whether Marshal adds TFLITE_METADATA: when
// there are labels or a normalization to tell other tools about.
func (md *Metadata) wantsTFLiteMetadata() bool {
	return len(md.Labels) > 0 || len(md.Mean) > 0 || len(md.Std) > 0
}

// scoresOutput is the index of the class-score output among the model
// outputs: the one named "scores", else the first.
func (md *Metadata) scoresOutput() int {
	for i, n := range md.OutputNames {
		if n == "scores" {
			return i
		}
	}
	return 0
}

// labelsText is labels.txt: one label per line, each line ending in "\n".
// Line breaks inside a label cannot be represented and become spaces (our
// own shortcut.meta keeps them). ok is false when the result exceeds what
// the reader accepts.
func labelsText(labels []string) (text []byte, ok bool) {
	if len(labels) > maxLabels {
		return nil, false
	}
	breaks := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")
	var b bytes.Buffer
	for _, l := range labels {
		b.WriteString(breaks.Replace(l))
		b.WriteByte('\n')
		if b.Len() > maxLabelsBytes {
			return nil, false
		}
	}
	return b.Bytes(), true
}

// tfliteMetadata builds the TFLITE_METADATA buffer for m and the files to
// append after the model. It returns nil when m.Meta has nothing for it.
func tfliteMetadata(m *Model) ([]byte, []associatedFile) {
	md := &m.Meta
	if !md.wantsTFLiteMetadata() {
		return nil, nil
	}
	var files []associatedFile

	inputs := make([]*tflmeta.TensorMetadataT, len(m.Inputs))
	for i, ti := range m.Inputs {
		tm := &tflmeta.TensorMetadataT{
			Content: &tflmeta.ContentT{ContentProperties: &tflmeta.ContentPropertiesT{
				Type: tflmeta.ContentPropertiesFeatureProperties, Value: &tflmeta.FeaturePropertiesT{}}},
		}
		inputs[i] = tm
		if i != 0 {
			continue
		}
		tm.Name = "image"
		tm.Description = "Input image to be classified."
		var shape []int
		if ti >= 0 && ti < len(m.Tensors) {
			shape = m.Tensors[ti].Shape
		}
		if len(shape) == 4 && (shape[3] == 1 || shape[3] == 3) {
			cs := tflmeta.ColorSpaceTypeRGB
			if shape[3] == 1 {
				cs = tflmeta.ColorSpaceTypeGRAYSCALE
			}
			tm.Content.ContentProperties = &tflmeta.ContentPropertiesT{
				Type: tflmeta.ContentPropertiesImageProperties, Value: &tflmeta.ImagePropertiesT{ColorSpace: cs}}
		}
		if len(md.Mean) > 0 {
			// The convention normalizes raw pixels x in 0..255 as
			// (x - mean') / std'. Ours is (x/255 - mean) / std, which is
			// (x - 255*mean) / (255*std): scale both by 255. Without Std
			// we do not divide, which is std' = 255.
			norm := &tflmeta.NormalizationOptionsT{
				Mean: make([]float32, len(md.Mean)), Std: make([]float32, len(md.Mean))}
			for c, v := range md.Mean {
				norm.Mean[c] = float32(float64(v) * pixelScale)
				norm.Std[c] = pixelScale
				if c < len(md.Std) {
					norm.Std[c] = float32(float64(md.Std[c]) * pixelScale)
				}
			}
			tm.ProcessUnits = []*tflmeta.ProcessUnitT{{Options: &tflmeta.ProcessUnitOptionsT{
				Type: tflmeta.ProcessUnitOptionsNormalizationOptions, Value: norm}}}
		}
	}

	scores := md.scoresOutput()
	outputs := make([]*tflmeta.TensorMetadataT, len(m.Outputs))
	for i := range m.Outputs {
		tm := &tflmeta.TensorMetadataT{
			Content: &tflmeta.ContentT{ContentProperties: &tflmeta.ContentPropertiesT{
				Type: tflmeta.ContentPropertiesFeatureProperties, Value: &tflmeta.FeaturePropertiesT{}}},
		}
		if i < len(md.OutputNames) {
			tm.Name = md.OutputNames[i]
		}
		if i == scores && len(md.Labels) > 0 {
			if text, ok := labelsText(md.Labels); ok {
				tm.Description = "Scores of the labelled classes."
				tm.AssociatedFiles = []*tflmeta.AssociatedFileT{{
					Name: labelsFile, Description: "Class labels, one per line.",
					Type: tflmeta.AssociatedFileTypeTENSOR_AXIS_LABELS,
				}}
				files = append(files, associatedFile{labelsFile, text})
			}
		}
		outputs[i] = tm
	}

	mm := &tflmeta.ModelMetadataT{
		Name: md.Name, Description: m.Description, Version: md.Version,
		SubgraphMetadata: []*tflmeta.SubGraphMetadataT{{
			InputTensorMetadata: inputs, OutputTensorMetadata: outputs,
		}},
		MinParserVersion: tflMinParserVersion,
	}
	b := flatbuffers.NewBuilder(512)
	b.FinishWithFileIdentifier(mm.Pack(b), []byte(tflMetaIdentifier))
	return b.FinishedBytes(), files
}

// appendAssociatedFiles appends a ZIP archive of files (stored, not
// compressed) to model. Its offsets count from the start of model, so
// readers of the whole file and of the archive alone both find the entries.
// The archive is deterministic: no timestamps.
func appendAssociatedFiles(model []byte, files []associatedFile) ([]byte, error) {
	out := bytes.NewBuffer(append(make([]byte, 0, len(model)+1024), model...))
	zw := zip.NewWriter(out)
	zw.SetOffset(int64(len(model)))
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Structure of the parts of ModelMetadata that readTFLiteMetadata reads,
// for the verifier of load.go (field ids as in schema/metadata.fbs).
var (
	tflAssocFileSpec = &tableSpec{name: "AssociatedFile", fields: []fieldSpec{
		str(0, "name"), scalar(2, "type", 1),
	}}
	tflNormSpec = &tableSpec{name: "NormalizationOptions", fields: []fieldSpec{
		vec(0, "mean", 4), vec(1, "std", 4),
	}}
	tflProcessUnitSpec = &tableSpec{name: "ProcessUnit", fields: []fieldSpec{
		scalar(0, "options_type", 1),
		{id: 1, name: "options", kind: unionField, union: map[byte]*tableSpec{
			byte(tflmeta.ProcessUnitOptionsNormalizationOptions): tflNormSpec}},
	}}
	tflTensorSpec = &tableSpec{name: "TensorMetadata", fields: []fieldSpec{
		str(0, "name"), tabs(4, "process_units", tflProcessUnitSpec),
		tabs(6, "associated_files", tflAssocFileSpec),
	}}
	tflSubGraphSpec = &tableSpec{name: "SubGraphMetadata", fields: []fieldSpec{
		tabs(2, "input_tensor_metadata", tflTensorSpec), tabs(3, "output_tensor_metadata", tflTensorSpec),
	}}
	tflModelSpec = &tableSpec{name: "ModelMetadata", fields: []fieldSpec{
		str(0, "name"), str(2, "version"), tabs(3, "subgraph_metadata", tflSubGraphSpec),
	}}
)

// verifyTFLiteMetadata checks the identifier and structure of a
// ModelMetadata buffer.
func verifyTFLiteMetadata(buf []byte) error {
	if len(buf) < 8 {
		return fmt.Errorf("buffer is %d bytes, too short for a ModelMetadata flatbuffer", len(buf))
	}
	if id := string(buf[4:8]); id != tflMetaIdentifier {
		return fmt.Errorf("file identifier is %q, want %q: not a TFLite Support ModelMetadata flatbuffer", id, tflMetaIdentifier)
	}
	v := &verifier{buf: buf, n: uint64(len(buf)), budget: 8*int64(len(buf)) + 1<<16}
	var err error
	if root := uint64(binary.LittleEndian.Uint32(buf)); root >= v.n {
		err = v.errorf(nil, "root offset %d points past the end", root)
	} else {
		err = v.table(&path{nil, "ModelMetadata", -1}, root, tflModelSpec)
	}
	if err != nil {
		// The verifier speaks of "the file"; here it is the metadata buffer.
		msg := strings.TrimPrefix(err.Error(), "model: malformed file ")
		return fmt.Errorf("malformed ModelMetadata flatbuffer %s", msg)
	}
	return nil
}

// readTFLiteMetadata decodes a TFLITE_METADATA buffer into Metadata. file is
// the whole .tflite file, whose appended ZIP holds the labels file; outputs
// is the number of graph outputs. Everything it reads is checked: any
// inconsistency is an error.
//
// primary says the result will be used (the file has no shortcut.meta).
// When it is false the entry is only cross-checked: a buffer without the
// M001 identifier is some other format and is ignored like any unknown
// entry, and a missing ZIP is accepted (tools that rewrite the flatbuffer
// drop the bytes after it); a ModelMetadata buffer or an appended ZIP that
// is there but damaged is an error either way. With readZip false the ZIP
// is not looked at and Labels stays nil (Load reads at most one labels
// file).
func readTFLiteMetadata(buf, file []byte, outputs int, readZip, primary bool) (Metadata, error) {
	var md Metadata
	if !primary && (len(buf) < 8 || string(buf[4:8]) != tflMetaIdentifier) {
		return md, nil
	}
	if err := verifyTFLiteMetadata(buf); err != nil {
		return md, err
	}
	mm := tflmeta.GetRootAsModelMetadata(buf, 0)
	md.Name, md.Version = string(mm.Name()), string(mm.Version())
	if mm.SubgraphMetadataLength() == 0 {
		return md, nil
	}
	var sg tflmeta.SubGraphMetadata
	mm.SubgraphMetadata(&sg, 0)

	var tm tflmeta.TensorMetadata
	if sg.InputTensorMetadataLength() > 0 {
		sg.InputTensorMetadata(&tm, 0)
		var err error
		if md.Mean, md.Std, err = readNormalization(&tm); err != nil {
			return md, fmt.Errorf("input_tensor_metadata[0]: %v", err)
		}
	}

	var names []string
	labels := ""
	for i := range sg.OutputTensorMetadataLength() {
		sg.OutputTensorMetadata(&tm, i)
		names = append(names, string(tm.Name()))
		var af tflmeta.AssociatedFile
		for k := range tm.AssociatedFilesLength() {
			tm.AssociatedFiles(&af, k)
			if labels == "" && af.Type() == tflmeta.AssociatedFileTypeTENSOR_AXIS_LABELS {
				labels = string(af.Name())
				if labels == "" {
					return md, fmt.Errorf("output_tensor_metadata[%d].associated_files[%d]: TENSOR_AXIS_LABELS file has no name", i, k)
				}
			}
		}
	}
	if len(names) == outputs && !slicesContain(names, "") {
		md.OutputNames = names
	}
	if labels != "" && readZip {
		text, err := readAssociatedFile(file, labels, primary)
		if err != nil {
			return md, err
		}
		if md.Labels, err = parseLabels(text); err != nil {
			return md, fmt.Errorf("associated file %q: %v", labels, err)
		}
	}
	return md, nil
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readNormalization converts the first NormalizationOptions of tm back to
// our scale: mean = mean'/255, std = std'/255 (see tfliteMetadata). A
// single value applies to every channel, as in the convention.
func readNormalization(tm *tflmeta.TensorMetadata) (mean, std []float32, err error) {
	var pu tflmeta.ProcessUnit
	for k := range tm.ProcessUnitsLength() {
		tm.ProcessUnits(&pu, k)
		var tab flatbuffers.Table
		if pu.OptionsType() != tflmeta.ProcessUnitOptionsNormalizationOptions || !pu.Options(&tab) {
			continue
		}
		var no tflmeta.NormalizationOptions
		no.Init(tab.Bytes, tab.Pos)
		m := floatVector(no.MeanLength(), no.Mean)
		s := floatVector(no.StdLength(), no.Std)
		switch {
		case len(m) == 0 && len(s) == 0:
			return nil, nil, nil
		case len(m) == 0:
			m = []float32{0}
		case len(s) == 0:
			s = []float32{1}
		}
		n := max(len(m), len(s))
		if (len(m) != n && len(m) != 1) || (len(s) != n && len(s) != 1) {
			return nil, nil, fmt.Errorf("process_units[%d]: normalization has %d mean and %d std values", k, len(m), len(s))
		}
		mean, std = make([]float32, n), make([]float32, n)
		for c := range n {
			mean[c] = float32(float64(m[min(c, len(m)-1)]) / pixelScale)
			std[c] = float32(float64(s[min(c, len(s)-1)]) / pixelScale)
		}
		return mean, std, nil
	}
	return nil, nil, nil
}

// readAssociatedFile returns the contents of the file called name in the
// ZIP archive appended to the model, at most maxLabelsBytes. Without a ZIP
// (none readable, and no local header of name in the file) it returns nil
// when required is false.
func readAssociatedFile(file []byte, name string, required bool) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if hasLocalHeader(file, name) {
			return nil, fmt.Errorf("malformed file (%d bytes): the ZIP archive appended to the model, which should hold associated file %q, is damaged: %v",
				len(file), name, err)
		}
		if !required {
			return nil, nil
		}
		return nil, fmt.Errorf("associated file %q: the model has no ZIP archive appended (a tool that rewrote the file may have dropped it): %v", name, err)
	}
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		if f.UncompressedSize64 > maxLabelsBytes {
			return nil, fmt.Errorf("associated file %q is %d bytes, more than the %d accepted", name, f.UncompressedSize64, maxLabelsBytes)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("associated file %q in the appended ZIP archive: %v", name, err)
		}
		defer rc.Close()
		// The declared size is bounded above; reading one byte past it
		// makes archive/zip check the size and CRC-32.
		data := make([]byte, f.UncompressedSize64)
		if _, err := io.ReadFull(rc, data); err != nil {
			return nil, fmt.Errorf("associated file %q in the appended ZIP archive: %v", name, err)
		}
		if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("more data than its declared size")
			}
			return nil, fmt.Errorf("associated file %q in the appended ZIP archive: %v", name, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("associated file %q is named by the metadata but missing from the appended ZIP archive", name)
}

// hasLocalHeader reports whether file holds a ZIP local file header for
// name: evidence that a ZIP archive was appended, even if it is damaged.
func hasLocalHeader(file []byte, name string) bool {
	const headerLen = 30 // fixed part of a local file header, name follows
	for off := 0; ; {
		i := bytes.Index(file[off:], []byte(name))
		if i < 0 {
			return false
		}
		i += off
		if i >= headerLen && string(file[i-headerLen:i-headerLen+4]) == "PK\x03\x04" &&
			int(binary.LittleEndian.Uint16(file[i-4:])) == len(name) {
			return true
		}
		off = i + 1
	}
}

// parseLabels splits labels.txt into labels: one per line, "\n" or "\r\n"
// line ends, the last line end optional. An empty file has no labels.
func parseLabels(text []byte) ([]string, error) {
	if len(text) == 0 {
		return nil, nil
	}
	if !utf8.Valid(text) {
		return nil, errors.New("labels are not UTF-8 text")
	}
	s := strings.TrimSuffix(string(text), "\n")
	if n := strings.Count(s, "\n") + 1; n > maxLabels {
		return nil, fmt.Errorf("%d labels, more than the %d accepted", n, maxLabels)
	}
	labels := strings.Split(s, "\n")
	for i, l := range labels {
		labels[i] = strings.TrimSuffix(l, "\r")
	}
	return labels, nil
}
