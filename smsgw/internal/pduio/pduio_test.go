package pduio

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

func mustSMBytes(t testing.TB, m *SM, id pdu.ID, seq uint32) []byte {
	t.Helper()
	b, err := m.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Encode(b, seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSMRoundTrip(t *testing.T) {
	in := &SM{
		SourceTON: 1, SourceNPI: 1, Source: "8613800138000", DestTON: 3, Dest: "10086",
		ESMClass: ESMUDHI, DataCoding: 0x08, RegisteredDelivery: 1,
		ShortMessage: []byte{5, 0, 3, 1, 2, 1, 0x4F, 0x60, 0x00, 0x00},
		TLVs:         map[pdutlv.Tag][]byte{TagSarMsgRefNum: {0x12, 0x34}},
	}
	for _, id := range []pdu.ID{pdu.SubmitSMID, pdu.DeliverSMID} {
		raw := mustSMBytes(t, in, id, 7)
		f, err := ReadFrame(bytes.NewReader(raw), DefaultMaxPDU)
		if err != nil || f.ID != id || f.Seq != 7 {
			t.Fatalf("frame %+v %v", f, err)
		}
		out, err := ParseSM(f.Body)
		if err != nil {
			t.Fatal(err)
		}
		if out.Source != in.Source || out.Dest != in.Dest || out.DataCoding != 8 || out.ESMClass != ESMUDHI ||
			!bytes.Equal(out.ShortMessage, in.ShortMessage) || !bytes.Equal(out.TLVs[TagSarMsgRefNum], []byte{0x12, 0x34}) {
			t.Fatalf("round trip: %+v", out)
		}
	}
}

func TestSMValidate(t *testing.T) {
	long := &SM{ShortMessage: make([]byte, 255)}
	if _, err := long.Body(pdu.SubmitSMID); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("255-byte short_message: %v (sm_length would wrap)", err)
	}
	addr := &SM{Dest: "123456789012345678901"}
	if _, err := addr.Body(pdu.SubmitSMID); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("long address: %v", err)
	}
	nul := &SM{Source: "a\x00b"}
	if _, err := nul.Body(pdu.SubmitSMID); !errors.Is(err, ErrMalformed) {
		t.Fatalf("NUL in address: %v", err)
	}
}

func TestParseSMTruncated(t *testing.T) {
	raw := mustSMBytes(t, &SM{Source: "1", Dest: "2", ShortMessage: []byte("hello")}, pdu.DeliverSMID, 1)
	body := raw[HeaderLen:]
	for n := range len(body) - 1 {
		if _, err := ParseSM(body[:n]); err == nil {
			t.Fatalf("truncated at %d/%d parsed", n, len(body))
		}
	}
	// A bad TLV after a good body keeps the body.
	bad := append(append([]byte{}, body...), 0x04, 0x24, 0x00, 0x09, 'x')
	m, err := ParseSM(bad)
	if err != nil || string(m.ShortMessage) != "hello" {
		t.Fatalf("bad TLV: %+v %v", m, err)
	}
}

func TestReadFrameBounds(t *testing.T) {
	small := Frame{ID: pdu.EnquireLinkID, Seq: 1}.Bytes()
	small[3] = 8
	if _, err := ReadFrame(bytes.NewReader(small), DefaultMaxPDU); !errors.Is(err, ErrFrameLength) {
		t.Fatalf("short length: %v", err)
	}
	big := Frame{ID: pdu.SubmitSMID, Seq: 9, Body: make([]byte, 100)}.Bytes()
	next := Empty(pdu.EnquireLinkID, 10, 0)
	r := bytes.NewReader(append(big, next...))
	_, err := ReadFrame(r, 64)
	var tl *TooLongError
	if !errors.As(err, &tl) || tl.Frame.Seq != 9 {
		t.Fatalf("long frame: %v", err)
	}
	f, err := ReadFrame(r, 64)
	if err != nil || f.ID != pdu.EnquireLinkID || f.Seq != 10 {
		t.Fatalf("stream out of step after discard: %+v %v", f, err)
	}
}

func TestSequenceWraps(t *testing.T) {
	var s Sequence
	if s.Next() != 1 {
		t.Fatal("does not start at 1")
	}
	s.Set(0x7FFFFFFF)
	if a, b := s.Next(), s.Next(); a != 0x7FFFFFFF || b != 1 {
		t.Fatalf("wrap: %#x %#x", a, b)
	}
}

func TestBindAndIDResp(t *testing.T) {
	p, err := Bind{SystemID: "roam", Password: "secret", AddressRange: "^10086"}.Body(pdu.BindTransceiverID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := Encode(p, 1, 0)
	f, _ := ReadFrame(bytes.NewReader(raw), DefaultMaxPDU)
	b, err := ParseBind(f.Body)
	if err != nil || b.SystemID != "roam" || b.Password != "secret" || b.InterfaceVersion != 0x34 || b.AddressRange != "^10086" {
		t.Fatalf("bind: %+v %v", b, err)
	}
	if _, err := (Bind{Password: "toolongpw"}).Body(pdu.BindTransceiverID); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("long password: %v", err)
	}
	raw, err = IDResp(pdu.SubmitSMRespID, 5, 0, "abc123")
	if err != nil {
		t.Fatal(err)
	}
	f, _ = ReadFrame(bytes.NewReader(raw), DefaultMaxPDU)
	if id, err := ParseID(f.Body); id != "abc123" || err != nil || f.Seq != 5 {
		t.Fatalf("resp: %q %v", id, err)
	}
}

func FuzzParsePDU(f *testing.F) {
	f.Add(mustSMBytes(f, &SM{Source: "1", Dest: "2", ShortMessage: []byte("hi")}, pdu.DeliverSMID, 1))
	f.Add(Empty(pdu.EnquireLinkID, 1, 0))
	raw, _ := IDResp(pdu.SubmitSMRespID, 2, 0, "x")
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b), 512)
		if err != nil {
			return
		}
		if m, err := ParseSM(fr.Body); err == nil {
			if m.Validate() == nil {
				if _, err := m.Body(pdu.DeliverSMID); err != nil {
					t.Fatalf("valid SM does not build: %v", err)
				}
			}
		}
		ParseDataSM(fr.Body)
		ParseBind(fr.Body)
		ParseID(fr.Body)
	})
}
