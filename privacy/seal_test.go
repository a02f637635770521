package privacy

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := NewSealer(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal([]byte("+8613800138000"), []byte("job 1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("13800138000")) {
		t.Fatal("sealed value shows the number")
	}
	got, err := s.Open(sealed, []byte("job 1"))
	if err != nil || string(got) != "+8613800138000" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, []byte("job 2")); !errors.Is(err, ErrUnseal) {
		t.Fatalf("moved value opened: %v", err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, KeySize), nil)
	if _, err := other.Open(sealed, []byte("job 1")); !errors.Is(err, ErrUnseal) {
		t.Fatalf("other key opened: %v", err)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, sealed[:len(sealed)-1]} {
		if _, err := s.Open(bad, []byte("job 1")); !errors.Is(err, ErrUnseal) {
			t.Fatalf("Open(%x) = %v", bad, err)
		}
	}
}
