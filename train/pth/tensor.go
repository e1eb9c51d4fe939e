package pth

import (
	"errors"
	"fmt"
)

// storage returns the checked bytes of a storage: record data/<key>, exactly numel elements.
func (a *archive) storage(r *storageRef) ([]byte, error) {
	if b, ok := a.storages[r.key]; ok {
		return b, nil
	}
	es := r.class.dtype.size
	if r.numel > len(a.file)/es {
		return nil, fmt.Errorf("storage %q claims %d %s elements; more than the %d-byte file holds",
			r.key, r.numel, r.class.name, len(a.file))
	}
	b, err := a.record("data/"+r.key, len(a.file))
	if errors.Is(err, errNoRecord) {
		return nil, fmt.Errorf("no record %q for storage %q (%d %s elements)", a.prefix+"data/"+r.key, r.key, r.numel, r.class.name)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != r.numel*es {
		return nil, fmt.Errorf("record %q holds %d bytes; its %d %s elements need %d", a.prefix+"data/"+r.key, len(b),
			r.numel, r.class.name, r.numel*es)
	}
	a.storages[r.key] = b
	return b, nil
}

// tensor makes a named tensor of a view: its elements row-major. A contiguous view is a slice of
// its storage; a strided one (a transposed tensor, a channels_last convolution weight) is
// gathered into a new buffer charged to budget.
func (a *archive) tensor(name string, v *view, budget *int) (Tensor, error) {
	st := v.storage
	data, err := a.storage(st)
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	dt := st.class.dtype
	bad := func(format string, args ...any) error {
		return fmt.Errorf("tensor %q: size %v, stride %v at storage offset %d: %s (storage %q holds %d %s elements)",
			name, v.size, v.stride, v.offset, fmt.Sprintf(format, args...), st.key, st.numel, st.class.name)
	}
	if v.offset > st.numel {
		return Tensor{}, bad("the offset lies past the storage")
	}
	// numel, computed so that it cannot overflow: it may not exceed the storage's numel, which a
	// tensor without overlapping elements never does.
	numel := 1
	for _, d := range v.size {
		if d == 0 {
			numel = 0
			break
		}
	}
	if numel != 0 {
		for _, d := range v.size {
			if d > st.numel/numel {
				return Tensor{}, bad("more elements than the storage holds")
			}
			numel *= d
		}
	}
	if numel > 0 {
		// The last element's index: offset + sum((size-1)*stride), each term checked before it is
		// added, all within the storage.
		last := v.offset
		for i, d := range v.size {
			if d == 1 {
				continue
			}
			if v.stride[i] > (st.numel-last)/(d-1) {
				return Tensor{}, bad("its elements reach past the end of the storage")
			}
			last += (d - 1) * v.stride[i]
		}
		if last >= st.numel {
			return Tensor{}, bad("its last element %d lies past the end of the storage", last)
		}
	}
	t := Tensor{DType: dt.name, Shape: append([]int{}, v.size...)}
	es := dt.size
	if contiguous(v.size, v.stride) {
		t.Data = data[v.offset*es : (v.offset+numel)*es : (v.offset+numel)*es]
		return t, nil
	}
	if numel*es > *budget {
		return Tensor{}, fmt.Errorf("tensor %q: copying strided tensors would take more than the file's %d bytes; "+
			"views that repeat one storage are not weights", name, len(a.file))
	}
	*budget -= numel * es
	t.Data = gather(data, v, numel, es)
	return t, nil
}

// contiguous reports whether stride is the row-major stride of size (dimensions of size 1 may
// have any stride, as in PyTorch).
func contiguous(size, stride []int) bool {
	want := 1
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// gather copies the numel elements of a checked view in row-major order.
func gather(data []byte, v *view, numel, es int) []byte {
	out := make([]byte, numel*es)
	idx := make([]int, len(v.size))
	src := v.offset
	for k := range numel {
		copy(out[k*es:(k+1)*es], data[src*es:(src+1)*es])
		// Advance the multi-index like an odometer, the last dimension fastest.
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			src += v.stride[d]
			if idx[d] < v.size[d] {
				break
			}
			src -= idx[d] * v.stride[d]
			idx[d] = 0
		}
	}
	return out
}
