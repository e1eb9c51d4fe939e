package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPasswordPrintsABcryptHashOfStdin(t *testing.T) {
	var out, errb bytes.Buffer
	if code := hashPassword([]string{"-cost", "4"}, strings.NewReader("correct horse battery\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse battery")); err != nil {
		t.Errorf("printed %q, which does not match the password: %v", h, err)
	}
	for _, c := range []struct {
		args  []string
		input string
		want  string
	}{
		{nil, "short\n", "at least"},
		{[]string{"secret-on-the-command-line"}, "", "standard input"},
		{[]string{"-cost", "99"}, "correct horse battery\n", "-cost 99"},
	} {
		out.Reset()
		errb.Reset()
		if code := hashPassword(c.args, strings.NewReader(c.input), &out, &errb); code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("hash-password %v <<< %q: exit %d, stderr %q; want a failure saying %q", c.args, c.input, code, errb.String(), c.want)
		}
	}
}
