package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// TLSFiles names the PEM files that configure TLS for a transport.
type TLSFiles struct {
	// CertFile and KeyFile hold this node's certificate chain and key. The
	// node presents it as a server and, with Mutual, as a client.
	CertFile string
	KeyFile  string
	// CAFile holds the CA certificates that peers' certificates must chain
	// to. Empty means the system roots.
	CAFile string
	// Mutual requires every connecting peer to present a certificate that
	// chains to CAFile, so only cluster members can send us messages.
	Mutual bool
	// ServerName overrides the name checked in a peer's certificate;
	// empty means the host part of the peer's address.
	ServerName string
}

// ErrTLS wraps every TLS configuration problem.
var ErrTLS = errors.New("transport: tls")

// Validate reports missing fields.
func (f *TLSFiles) Validate() error {
	var errs []error
	if f.CertFile == "" {
		errs = append(errs, fmt.Errorf("%w: TLS.CertFile is empty", ErrInvalidConfig))
	}
	if f.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%w: TLS.KeyFile is empty", ErrInvalidConfig))
	}
	if f.Mutual && f.CAFile == "" {
		errs = append(errs, fmt.Errorf("%w: TLS.Mutual needs TLS.CAFile", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// Load reads the files and returns the server-side config and a client-side
// template (ServerName left for ClientConfig to fill per peer). Both require
// TLS 1.3: there is no older peer to be compatible with.
func (f *TLSFiles) Load(nextProtos []string) (server, client *tls.Config, err error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: loading %s / %s: %w", ErrTLS, f.CertFile, f.KeyFile, err)
	}
	var pool *x509.CertPool
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: reading CA: %w", ErrTLS, err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLS, f.CAFile)
		}
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   nextProtos,
	}
	if f.Mutual {
		server.ClientAuth = tls.RequireAndVerifyClientCert
		server.ClientCAs = pool
	}
	client = &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		NextProtos: nextProtos,
		ServerName: f.ServerName,
	}
	if f.Mutual {
		client.Certificates = []tls.Certificate{cert}
	}
	return server, client, nil
}

// ClientConfig returns a copy of template whose ServerName is addr's host,
// unless the template names one already.
func ClientConfig(template *tls.Config, addr string) *tls.Config {
	c := template.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	return c
}

// SelfSignedCert makes a throw-away ECDSA P-256 certificate valid for a
// year. QUIC needs a certificate even when the operator configured none;
// such a certificate encrypts but authenticates nobody.
func SelfSignedCert(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: generating key: %w", ErrTLS, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: serial: %w", ErrTLS, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "raftbench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: creating certificate: %w", ErrTLS, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
