// Command shortcut-agent is the on-board daemon. This first version loads and
// checks a model and classifies .npy inputs; capture, MQTT and GPIO arrive
// with the agent issue.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

func main() {
	model := flag.String("model", "", "the .tflite model to load")
	check := flag.Bool("check-model", false, "load and prepare the model, print a summary and exit")
	flag.Parse()
	if *model == "" || !*check {
		fmt.Fprintln(os.Stderr, "usage: shortcut-agent --model M.tflite --check-model\n(the daemon itself is not built yet; see README.md)")
		os.Exit(2)
	}
	m, err := resnet.LoadFile(*model)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shortcut-agent:", err)
		os.Exit(1)
	}
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "shortcut-agent: model %q: %v\n", *model, err)
		os.Exit(1)
	}
	fmt.Printf("model %s: %q, %d operators, %d inputs, %d outputs, %d labels\n",
		*model, m.Description, len(m.Operators), it.NumInputs(), it.NumOutputs(), len(m.Meta.Labels))
}
