package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/shortcut-edge/shortcut/train/data"
)

// TestExportedFoldedModelComputesTheSameLogits trains a few steps (so batch-norm statistics are
// not trivial), exports, and runs the folded op list with the reference interpreter: its logits
// must match GoMLX's inference graph on the checkpoint.
func TestExportedFoldedModelComputesTheSameLogits(t *testing.T) {
	tr, te := fashion(t, 700, 8)
	for _, arch := range []string{"resnet8", "resnet18", "resnet50"} {
		t.Run(arch, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig(dir, tr, nil)
			cfg.Arch, cfg.BaseWidth, cfg.MaxSteps, cfg.Epochs = arch, 4, 6, 1
			if _, err := Fit(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "export")
			m, err := Export(ExportOptions{Backend: "cpu", Dir: dir, Latest: true, Out: out})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := LoadExported(out)
			if err != nil {
				t.Fatal(err)
			}
			s, err := loadModel("cpu", "", dir, true)
			if err != nil {
				t.Fatal(err)
			}
			it, err := data.Iterate(context.Background(), te, s.meta.batchOptions(te.Len()))
			if err != nil {
				t.Fatal(err)
			}
			batch, _ := it.Next()
			it.Close()
			logits := gctx.MustExecOnce(s.backend, s.ctx.Reuse(), func(ctx *gctx.Context, x *Node) *Node {
				ctx.SetTraining(x.Graph(), false)
				return s.net.Build(ctx, s.ops, x)
			}, xTensor(batch))
			want := tensors.MustCopyFlatData[float32](logits)
			k := len(m.Classes)
			img := batch.H * batch.W * batch.C
			for i := range batch.N {
				got, err := ref.Run(batch.X[i*img : (i+1)*img])
				if err != nil {
					t.Fatal(err)
				}
				for j := range k {
					w := want[i*k+j]
					if math.Abs(float64(got[j]-w)) > 1e-3*(1+math.Abs(float64(w))) {
						t.Fatalf("image %d logit %d: folded export gives %g, GoMLX %g", i, j, got[j], w)
					}
				}
			}
			convs, synth := 0, 0
			for _, op := range m.Ops {
				if op.Op == "conv2d" {
					convs++
					if op.Synthesized {
						synth++
					}
				}
			}
			t.Logf("%s: %d ops, %d conv2d (%d synthesized shortcuts)", arch, len(m.Ops), convs, synth)
			if convs == 0 || m.Ops[len(m.Ops)-1].Op != "fully_connected" {
				t.Errorf("op list does not look like a ResNet: %d convs, last op %q", convs, m.Ops[len(m.Ops)-1].Op)
			}
		})
	}
}
