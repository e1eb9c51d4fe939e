package models

import "fmt"

// KerasResNet50Arch names Keras' ResNet50 (keras.applications.ResNet50), which differs from
// torchvision's resnet50 in ways that change its numbers, not only its names:
//   - it is ResNet v1: a downsampling block puts its stride on the first 1x1 convolution and on
//     the 1x1 projection shortcut (torchvision's v1.5 puts it on the 3x3);
//   - every convolution has a bias (Conv2D's default use_bias=True), folded with the batch norm
//     that follows;
//   - batch norms use epsilon KerasBNEpsilon (1.001e-5), not 1e-5;
//   - padding is explicit: ZeroPadding2D 3 (conv1_pad) before the 7x7/2 convolution and 1
//     (pool1_pad) before the 3x3/2 max pool; the 3x3 convolutions are 'same' (1 at stride 1).
//     The zeros pool1_pad adds never win the max, because the pool follows a ReLU; so the max
//     pool here pads as every other one (padding never wins).
const KerasResNet50Arch = "keras-resnet50"

// KerasBNEpsilon is the batch-norm epsilon of Keras' ResNets (keras.applications.resnet).
const KerasBNEpsilon = 1.001e-5

// KerasHeadName is the name this package gives the Dense classifier of a Keras ResNet50. The
// weights file's own name for it varies (predictions in the ImageNet file with its top, dense,
// dense_1, ... for a Dense added by the user); the importer finds it by its shape.
const KerasHeadName = "predictions"

// KerasResNet50 returns Keras' ResNet50 as a layer list whose weighted layers carry Keras'
// layer names (conv1_conv, conv1_bn, conv2_block1_0_conv, ..., conv5_block3_3_bn), followed by
// avg_pool (pooling='avg') and a Dense classifier named KerasHeadName. Every OpConv of this
// net has a bias and every OpBatchNorm epsilon KerasBNEpsilon: it is read by the Keras
// importer's exporter (package train), not trained by Net.Build, which knows neither.
func KerasResNet50(height, width, channels, classes int) (*Net, error) {
	if height < 32 || width < 32 {
		return nil, fmt.Errorf("model %s: input %dx%d too small (Keras' ResNet50 needs at least 32x32)", KerasResNet50Arch, height, width)
	}
	if channels != 3 || classes < 1 {
		return nil, fmt.Errorf("model %s: needs 3 input channels and at least 1 class, got %d channels, %d classes", KerasResNet50Arch, channels, classes)
	}
	b := &netBuilder{net: &Net{Arch: KerasResNet50Arch, Height: height, Width: width, Channels: channels, NumClasses: classes},
		last: InputName, ch: channels}
	b.add(Layer{Kind: OpConv, Name: "conv1_conv", In: channels, Out: 64, Kernel: 7, Stride: 2, Pad: 3})
	b.add(Layer{Kind: OpBatchNorm, Name: "conv1_bn", In: 64, Out: 64})
	b.add(Layer{Kind: OpReLU, Name: "conv1_relu", In: 64, Out: 64})
	x := b.add(Layer{Kind: OpMaxPool, Name: "pool1_pool", In: 64, Out: 64, Kernel: 3, Stride: 2, Pad: 1})
	conv := func(name, from string, out, k, stride int) string {
		b.add(Layer{Kind: OpConv, Name: name + "_conv", Inputs: []string{from}, In: b.chOf(from), Out: out, Kernel: k, Stride: stride, Pad: k / 2})
		return b.add(Layer{Kind: OpBatchNorm, Name: name + "_bn", In: out, Out: out})
	}
	// stack1(x, filters, blocks, stride1, name) of keras.applications.resnet.
	for stage, blocks := range []int{3, 4, 6, 3} {
		filters := 64 << stage
		for blk := 1; blk <= blocks; blk++ {
			p := fmt.Sprintf("conv%d_block%d", stage+2, blk)
			stride := 1
			if blk == 1 && stage > 0 {
				stride = 2
			}
			short := x
			if blk == 1 {
				short = conv(p+"_0", x, 4*filters, 1, stride)
			}
			conv(p+"_1", x, filters, 1, stride)
			b.add(Layer{Kind: OpReLU, Name: p + "_1_relu", In: filters, Out: filters})
			conv(p+"_2", b.last, filters, 3, 1)
			b.add(Layer{Kind: OpReLU, Name: p + "_2_relu", In: filters, Out: filters})
			y := conv(p+"_3", b.last, 4*filters, 1, 1)
			b.add(Layer{Kind: OpAdd, Name: p + "_add", Inputs: []string{short, y}, In: 4 * filters, Out: 4 * filters})
			x = b.add(Layer{Kind: OpReLU, Name: p + "_out", In: 4 * filters, Out: 4 * filters})
		}
	}
	b.add(Layer{Kind: OpGlobalAvgPool, Name: "avg_pool", In: 2048, Out: 2048})
	b.add(Layer{Kind: OpDense, Name: KerasHeadName, In: 2048, Out: classes})
	return b.net, nil
}
