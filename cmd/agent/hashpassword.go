package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// minPasswordBytes is the shortest password hash-password accepts.
const minPasswordBytes = 10

// hashPassword is `shortcut-agent hash-password`: it reads one password
// (the first line of standard input, so that it stays out of the shell's
// history and the process list) and prints its bcrypt hash for
// http.auth.users[].password_hash.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shortcut-agent hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d: each step doubles the work of a login (and of a guess)", bcrypt.MinCost, bcrypt.MaxCost))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shortcut-agent hash-password [-cost N] < password-file\n"+
			"Reads a password from the first line of standard input and prints its bcrypt hash for http.auth.users[].password_hash.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shortcut-agent hash-password: unexpected argument %q: give the password on standard input, not as an argument (arguments are visible to every user in the process list)\n", fs.Arg(0))
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "shortcut-agent hash-password: -cost %d: want %d to %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "shortcut-agent hash-password: reading standard input:", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case len(pw) < minPasswordBytes:
		fmt.Fprintf(stderr, "shortcut-agent hash-password: the password is %d bytes; use at least %d (for example: printf '%%s\\n' 'a long passphrase' | shortcut-agent hash-password)\n", len(pw), minPasswordBytes)
		return 1
	case len(pw) > 72:
		fmt.Fprintln(stderr, "shortcut-agent hash-password: the password is longer than 72 bytes, the most bcrypt uses; shorten it")
		return 1
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintln(stderr, "shortcut-agent hash-password:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}
