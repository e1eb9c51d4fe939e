package head

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

// Labels come from two places, with two rules:
//
//   - A name a person types (learn over MQTT, gpio.button.label) must pass
//     ValidateLabel: short, printable, no '/' or quotes, so that a typo or
//     a hostile client cannot put odd bytes into replies, metrics and logs.
//   - A model's own labels are data: whatever its metadata carries
//     ("T-shirt/top", "crane, Grus americana"). They are never file names
//     or topic levels, so CheckLabel asks only that a label be a non-empty
//     UTF-8 string of sane length. Heads, stores and state files hold both
//     kinds and check with CheckLabel; the agent decides which rule a
//     command's label needs (a label the model or the store already knows
//     is accepted as it is).

// MaxLabelBytes bounds a typed label's length in UTF-8 bytes. Labels travel
// in MQTT payloads and .tflite metadata; 64 bytes hold any sensible class
// name in any script.
const MaxLabelBytes = 64

// MaxLabelDataBytes bounds any label a head or store keeps, a model's own
// included: generous for real label files (ImageNet's longest is about 120
// bytes), it keeps a damaged state file from making huge strings.
const MaxLabelDataBytes = 4096

// ValidateLabel checks a class name a person gives: 1 to MaxLabelBytes
// bytes of valid UTF-8 made of letters (any script, with their combining
// marks), digits, space, '-', '_' and '.', not starting or ending with a
// space, and not "." or "..". Everything else (control characters, '/',
// quotes, emoji) is refused.
func ValidateLabel(label string) error {
	if label == "" {
		return fmt.Errorf("label is empty; give the class a name such as \"cat\"")
	}
	if len(label) > MaxLabelBytes {
		return fmt.Errorf("label %.20q... is %d bytes long; the limit is %d bytes", label, len(label), MaxLabelBytes)
	}
	if !utf8.ValidString(label) {
		return fmt.Errorf("label %q is not valid UTF-8", label)
	}
	if label == "." || label == ".." {
		return fmt.Errorf("label %q is reserved; use a name with a letter or digit", label)
	}
	if label[0] == ' ' || label[len(label)-1] == ' ' {
		return fmt.Errorf("label %q starts or ends with a space; remove it", label)
	}
	for i, r := range label {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r):
		case unicode.IsMark(r) && i > 0: // combining accents after a letter
		case r == ' ', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("label %q: character %q at byte %d is not allowed; use letters, digits, space, '-', '_' or '.'", label, r, i)
		}
	}
	return nil
}

// CheckLabel checks a label that heads, stores and state files may hold:
// 1 to MaxLabelDataBytes bytes of valid UTF-8. A model's labels pass as
// they are; typed labels must also pass ValidateLabel, which the caller
// checks where they come in.
func CheckLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("label is empty; every class needs a name")
	case len(label) > MaxLabelDataBytes:
		return fmt.Errorf("label %.20q... is %d bytes long; the limit is %d bytes", label, len(label), MaxLabelDataBytes)
	case !utf8.ValidString(label):
		return fmt.Errorf("label %q is not valid UTF-8", label)
	}
	return nil
}

// ClassLabels names a model's classes (modelio.ClassLabels: the one naming
// the loader, the head and the agent's payloads share).
func ClassLabels(meta []string, classes int) []string { return modelio.ClassLabels(meta, classes) }
