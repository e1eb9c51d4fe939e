package head

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxLabelBytes bounds a label's length in UTF-8 bytes. Labels travel in
// MQTT payloads and .tflite metadata; 64 bytes hold any sensible class
// name in any script.
const MaxLabelBytes = 64

// ValidateLabel checks a class name: 1 to MaxLabelBytes bytes of valid
// UTF-8 made of letters (any script, with their combining marks), digits,
// space, '-', '_' and '.', not starting or ending with a space, and not "."
// or "..". Everything else (control characters, '/', quotes, emoji) is
// refused so that labels are safe in topics, file names and logs.
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
