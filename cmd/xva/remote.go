package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/xva-tools/xva/xapi"
)

// remoteFlags are the flags of the commands that talk to a pool master.
type remoteFlags struct {
	url, user, passwordFile, caCert string
	insecure, allowHTTP             bool
}

func (f *remoteFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "the pool master, https://HOST (required)")
	fl.StringVar(&f.user, "user", "root", "user to log in as")
	fl.StringVar(&f.passwordFile, "password-file", "", "read the password from this file (else XVA_PASSWORD, else a prompt)")
	fl.StringVar(&f.caCert, "ca-cert", "", "trust the CA certificate(s) in this PEM file")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the host's TLS certificate")
	fl.BoolVar(&f.allowHTTP, "allow-http", false, "allow an http:// URL, which sends the password and the VM unencrypted")
}

// checkURL checks --url and returns it as xapi.Login wants it: a scheme
// and a host, no path. Plain HTTP would send the password (and the VM) in
// clear text, so it takes --allow-http.
func (f *remoteFlags) checkURL() (string, error) {
	if f.url == "" {
		return "", usagef("--url is required, e.g. --url https://xenserver.example.com")
	}
	u, err := url.Parse(f.url)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", usagef("--url %q: want https://HOST (or https://HOST:PORT)", f.url)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--url %q: give the host only, https://%s; xva adds the paths itself", f.url, u.Host)
	}
	if u.Scheme == "http" && !f.allowHTTP {
		return "", usagef("--url %s is plain HTTP: the password and the whole VM would cross the network unencrypted. "+
			"Use https://%s, or add --allow-http on a network you trust", f.url, u.Host)
	}
	return u.Scheme + "://" + u.Host, nil
}

// password comes from --password-file, XVA_PASSWORD or a terminal prompt:
// never from the command line, where other users can read it.
func (f *remoteFlags) password() (string, error) {
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if p, ok := os.LookupEnv("XVA_PASSWORD"); ok {
		return p, nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", usagef("no password: give --password-file, set XVA_PASSWORD, or run on a terminal to be asked")
	}
	fmt.Fprintf(os.Stderr, "Password for %s at %s: ", f.user, f.url)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	return string(b), err
}

// login opens a session; the caller must log out (logout does, also after
// Ctrl-C).
func (f *remoteFlags) login(ctx context.Context, g *globals) (*xapi.Client, error) {
	base, err := f.checkURL()
	if err != nil {
		return nil, err
	}
	f.url = base
	pw, err := f.password()
	if err != nil {
		return nil, err
	}
	c, err := xapi.Login(ctx, f.url, f.user, pw, xapi.WithInsecure(f.insecure), xapi.WithCACert(f.caCert), xapi.WithLogger(g.log))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// logout ends the session with a context of its own, so that it happens
// after the work's context is cancelled too.
func logout(c *xapi.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Logout(ctx)
}
