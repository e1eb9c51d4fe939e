package data

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Augment describes the random training augmentation of each image.
type Augment struct {
	// CropPad > 0 zero-pads every side by CropPad pixels and takes a random crop of the
	// original size (He et al.: 4 on 32x32 CIFAR).
	CropPad int
	// Flip mirrors half of the images left-right.
	Flip bool
}

// Normalization maps a byte p of channel c to (p/255 - Mean[c]) / Std[c].
type Normalization struct {
	Mean, Std []float32
}

// Stats computes per-channel mean and standard deviation of d on the 0..1 scale.
func Stats(d *Dataset) Normalization {
	c := d.Channels
	sum := make([]float64, c)
	sq := make([]float64, c)
	for i, p := range d.Images {
		v := float64(p) / 255
		sum[i%c] += v
		sq[i%c] += v * v
	}
	n := float64(len(d.Images) / c)
	nm := Normalization{Mean: make([]float32, c), Std: make([]float32, c)}
	for k := range c {
		m := sum[k] / n
		v := sq[k]/n - m*m
		nm.Mean[k] = float32(m)
		nm.Std[k] = float32(max(1e-3, math.Sqrt(max(0, v))))
	}
	return nm
}

// BatchOptions configure Iterate.
type BatchOptions struct {
	BatchSize int
	// Shuffle reorders the images each epoch from (Seed, Epoch); a resumed run that sets
	// the same Seed and Epoch sees the same order.
	Shuffle bool
	Seed    uint64
	Epoch   int
	// DropLast drops a last partial batch (training); otherwise the last batch is padded with
	// copies of its first image up to BatchSize and Batch.N tells how many are real, so a
	// compiled graph sees one shape.
	DropLast bool
	Augment  Augment
	Norm     Normalization
	// PadTo > 0 zero-pads images (centered) to PadTo x PadTo, e.g. 28x28 Fashion-MNIST to the
	// 32x32 of the CIFAR recipe.
	PadTo int
	// Workers prepare batches concurrently (0: GOMAXPROCS, at most 4).
	Workers int
	// Prefetch is how many batches may wait ready (0: 2*Workers).
	Prefetch int
}

// Batch is one NHWC float32 batch.
type Batch struct {
	X          []float32
	Y          []int32
	N          int // real images; the rest (up to len(Y)) is padding
	H, W, C    int
	Index      int // batch number within the epoch
	Epoch      int
	ImageIndex []int // dataset index of each row
}

// OutputSize returns the image size batches will have.
func OutputSize(d *Dataset, opt BatchOptions) (h, w int) {
	h, w = d.Height, d.Width
	if opt.PadTo > 0 {
		h, w = max(h, opt.PadTo), max(w, opt.PadTo)
	}
	return h, w
}

// NumBatches returns how many batches one epoch yields.
func NumBatches(n int, opt BatchOptions) int {
	if opt.BatchSize <= 0 {
		return 0
	}
	if opt.DropLast {
		return n / opt.BatchSize
	}
	return (n + opt.BatchSize - 1) / opt.BatchSize
}

// Iterator yields the batches of one epoch in order; workers fill them in the background.
type Iterator struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	order  chan chan Batch
}

type job struct {
	index int
	idx   []int
	out   chan Batch
}

// Iterate starts workers, owned by ctx, that prepare the batches of one epoch. Call Close when
// done (also when stopping early): it cancels the workers and waits for them.
func Iterate(ctx context.Context, d *Dataset, opt BatchOptions) (*Iterator, error) {
	if opt.BatchSize <= 0 {
		return nil, fmt.Errorf("batches of %s: batch size %d must be positive", d.Name, opt.BatchSize)
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("batches of %s: dataset is empty", d.Name)
	}
	if opt.DropLast && d.Len() < opt.BatchSize {
		return nil, fmt.Errorf("batches of %s: %d images, fewer than one batch of %d", d.Name, d.Len(), opt.BatchSize)
	}
	if len(opt.Norm.Mean) != 0 && (len(opt.Norm.Mean) != d.Channels || len(opt.Norm.Std) != d.Channels) {
		return nil, fmt.Errorf("batches of %s: normalization has %d means/%d stds for %d channels", d.Name,
			len(opt.Norm.Mean), len(opt.Norm.Std), d.Channels)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = min(4, runtime.GOMAXPROCS(0))
	}
	prefetch := opt.Prefetch
	if prefetch <= 0 {
		prefetch = 2 * workers
	}
	order := make([]int, d.Len())
	for i := range order {
		order[i] = i
	}
	if opt.Shuffle {
		rng := rand.New(rand.NewPCG(opt.Seed, uint64(opt.Epoch)+1))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	ctx, cancel := context.WithCancel(ctx)
	it := &Iterator{ctx: ctx, cancel: cancel, order: make(chan chan Batch, prefetch)}
	jobs := make(chan job)
	nb := NumBatches(d.Len(), opt)

	it.wg.Add(1)
	go func() { // producer: hands out batches in order
		defer it.wg.Done()
		defer close(it.order)
		defer close(jobs)
		for b := range nb {
			lo, hi := b*opt.BatchSize, min((b+1)*opt.BatchSize, len(order))
			j := job{index: b, idx: order[lo:hi], out: make(chan Batch, 1)}
			select {
			case it.order <- j.out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		it.wg.Add(1)
		go func() {
			defer it.wg.Done()
			for j := range jobs {
				j.out <- makeBatch(d, opt, j.index, j.idx)
			}
		}()
	}
	return it, nil
}

// Next returns the next batch, or false at the end of the epoch.
func (it *Iterator) Next() (Batch, bool) {
	var ch chan Batch
	select {
	case c, ok := <-it.order:
		if !ok {
			return Batch{}, false
		}
		ch = c
	case <-it.ctx.Done():
		return Batch{}, false
	}
	select {
	case b := <-ch:
		return b, true
	case <-it.ctx.Done():
		return Batch{}, false
	}
}

// Close stops the workers and waits for them to exit.
func (it *Iterator) Close() {
	it.cancel()
	// Drain so that the producer is not blocked on a full order queue.
	go func() {
		for range it.order {
		}
	}()
	it.wg.Wait()
}

// makeBatch builds one batch; its randomness comes from (Seed, Epoch, index) only.
func makeBatch(d *Dataset, opt BatchOptions, index int, idx []int) Batch {
	h, w := OutputSize(d, opt)
	c := d.Channels
	size := len(idx)
	if !opt.DropLast {
		size = opt.BatchSize
	}
	b := Batch{X: make([]float32, size*h*w*c), Y: make([]int32, size), N: len(idx), H: h, W: w, C: c,
		Index: index, Epoch: opt.Epoch, ImageIndex: make([]int, size)}
	rng := rand.New(rand.NewPCG(opt.Seed^0xa5a5a5a5, uint64(opt.Epoch)<<32|uint64(index)))
	// Offsets that centre the source image in the (possibly padded) output.
	offY, offX := (h-d.Height)/2, (w-d.Width)/2
	scale := make([]float32, c)
	shift := make([]float32, c)
	for k := range c {
		scale[k], shift[k] = 1.0/255, 0
		if len(opt.Norm.Mean) == c {
			scale[k] = 1 / (255 * opt.Norm.Std[k])
			shift[k] = -opt.Norm.Mean[k] / opt.Norm.Std[k]
		}
	}
	for row := range size {
		src := idx[min(row, len(idx)-1)]
		if row >= len(idx) {
			src = idx[0]
		}
		b.Y[row] = d.Labels[src]
		b.ImageIndex[row] = src
		img := d.Image(src)
		dy, dx := 0, 0
		flip := false
		if opt.Augment.CropPad > 0 {
			p := opt.Augment.CropPad
			dy, dx = rng.IntN(2*p+1)-p, rng.IntN(2*p+1)-p
		}
		if opt.Augment.Flip {
			flip = rng.IntN(2) == 1
		}
		out := b.X[row*h*w*c : (row+1)*h*w*c]
		for y := range h {
			sy := y + dy - offY
			for x := range w {
				sx := x + dx
				if flip {
					sx = w - 1 - x + dx
				}
				sx -= offX
				o := (y*w + x) * c
				if sy < 0 || sy >= d.Height || sx < 0 || sx >= d.Width {
					for k := range c {
						out[o+k] = shift[k]
					}
					continue
				}
				s := (sy*d.Width + sx) * c
				for k := range c {
					out[o+k] = float32(img[s+k])*scale[k] + shift[k]
				}
			}
		}
	}
	return b
}
