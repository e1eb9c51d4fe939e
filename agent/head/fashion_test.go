package head

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// fashionDir is where Debian's dataset-fashion-mnist package puts the data.
const fashionDir = "/usr/share/datasets/fashion-mnist"

var fashionNames = []string{"T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// readIDX reads a gzipped IDX file: big-endian magic 0x00000803 (images,
// then count, rows, cols) or 0x00000801 (labels, then count), then bytes.
// It returns the first limit items, each as bytes.
func readIDX(t testing.TB, path string, limit int) (items [][]byte, rows, cols int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening %s (install the Debian package dataset-fashion-mnist): %v", path, err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var magic, count uint32
	if err := binary.Read(z, binary.BigEndian, &magic); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := binary.Read(z, binary.BigEndian, &count); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	size := 1
	switch magic {
	case 0x00000803:
		var dims [2]uint32
		if err := binary.Read(z, binary.BigEndian, &dims); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows, cols = int(dims[0]), int(dims[1])
		size = rows * cols
	case 0x00000801:
	default:
		t.Fatalf("%s: IDX magic %#08x, want 0x803 or 0x801", path, magic)
	}
	n := min(int(count), limit)
	buf := make([]byte, n*size)
	if _, err := io.ReadFull(z, buf); err != nil {
		t.Fatalf("%s: reading %d items: %v", path, n, err)
	}
	for i := range n {
		items = append(items, buf[i*size:(i+1)*size])
	}
	return items, rows, cols
}

type fashionSet struct {
	pixels [][]float32 // 784 values in [0,1]
	labels []int
}

func loadFashion(t testing.TB, split string, limit int) fashionSet {
	imgs, r, c := readIDX(t, fmt.Sprintf("%s/%s-images-idx3-ubyte.gz", fashionDir, split), limit)
	labs, _, _ := readIDX(t, fmt.Sprintf("%s/%s-labels-idx1-ubyte.gz", fashionDir, split), limit)
	if r != 28 || c != 28 || len(imgs) != len(labs) {
		t.Fatalf("fashion %s: %d images of %dx%d, %d labels", split, len(imgs), r, c, len(labs))
	}
	var s fashionSet
	for i, im := range imgs {
		p := make([]float32, len(im))
		for k, v := range im {
			p[k] = float32(v) / 255
		}
		s.pixels = append(s.pixels, p)
		s.labels = append(s.labels, int(labs[i][0]))
	}
	return s
}

// randomFeatureModel is a stand-in backbone until a trained one lands: a
// fixed random projection of the 784 pixels followed by ReLU gives the
// "embedding" output, and a FULLY_CONNECTED + SOFTMAX over it the class
// scores, the same two outputs and classifier shape as our ResNets.
// Random ReLU features of Fashion-MNIST pixels are linearly separable
// enough (about 80-85 %) to tell whether head training works.
func randomFeatureModel(t testing.TB, dim int, labels []string, seed uint64) *resnet.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	proj := make([]float32, dim*784)
	for i := range proj {
		proj[i] = float32(r.NormFloat64() * math.Sqrt(2.0/784))
	}
	bias := make([]float32, dim)
	for i := range bias {
		bias[i] = float32(r.NormFloat64() * 0.3)
	}
	cls := make([]float32, len(labels)*dim)
	for i := range cls {
		cls[i] = float32(r.NormFloat64() * math.Sqrt(1/float64(dim)))
	}
	g := build.New("random-feature stand-in backbone")
	x := g.Input("input", 1, 784)
	emb := g.FullyConnected("embedding", x, dim, proj, bias, resnet.ActRelu)
	logits := g.FullyConnected("logits", emb, len(labels), cls, nil, resnet.ActNone)
	g.Output(g.Softmax("scores", logits, 1))
	g.Output(emb)
	g.SetMeta(resnet.Metadata{Name: "stand-in", Labels: labels, OutputNames: []string{"scores", "embedding"}})
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runner embeds images with a model: scores and embedding per image.
type runner struct{ it *interp.Interpreter }

func newRunner(t testing.TB, m *resnet.Model) runner {
	t.Helper()
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		t.Fatalf("preparing %q: %v", m.Description, err)
	}
	return runner{it}
}

func (r runner) run(t testing.TB, pixels []float32) (scores, emb []float32) {
	t.Helper()
	copy(r.it.Input(0).Float32(), pixels)
	if err := r.it.Invoke(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), r.it.Output(0).Float32()...), append([]float32(nil), r.it.Output(1).Float32()...)
}

func quantizeModel(t testing.TB, f *resnet.Model, calib [][]float32) *resnet.Model {
	t.Helper()
	var samples []quant.Sample
	for _, p := range calib {
		samples = append(samples, quant.Sample{p})
	}
	q, err := quant.Model(f, samples, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return roundTrip(t, q)
}

// roundTrip writes and reloads a model, as the agent would read the file.
func roundTrip(t testing.TB, m *resnet.Model) *resnet.Model {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal %q: %v", m.Description, err)
	}
	back, err := resnet.Load(b)
	if err != nil {
		t.Fatalf("reloading %q: %v", m.Description, err)
	}
	return back
}
