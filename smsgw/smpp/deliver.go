package smpp

import (
	"errors"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// Address is an SMPP address with its type of number and numbering plan.
// Subscribers are usually TON 1 / NPI 1; a short code such as 10086 is
// usually TON 3 or 0 with NPI 0 or 1: the SMSC's documentation decides.
type Address struct {
	Addr string
	TON  byte
	NPI  byte
}

// Deliver is one inbound message: a complete MO (reassembled when it came
// in parts) or a delivery receipt, from deliver_sm or data_sm.
type Deliver struct {
	Source      Address
	Dest        Address
	ServiceType string
	ESMClass    byte
	ProtocolID  byte
	DataCoding  byte
	// Text is the decoded text, empty when Binary.
	Text string
	// Data is the raw payload, UDH removed, parts joined.
	Data []byte
	// Binary is true when the payload is not text this gateway reads:
	// 8-bit data, an unknown data_coding, or a malformed UDH. The caller
	// usually answers with help or ignores it.
	Binary bool
	// Parts is how many deliver_sm carried it (1 unless concatenated).
	Parts int
	// Receipt is set when this is a delivery receipt
	// (esm_class & 0x3C == 0x04).
	Receipt *Receipt
	// DataSM is true when it came as data_sm rather than deliver_sm.
	DataSM bool

	// Answered, when the handler sets it, is called once the resp carrying
	// the handler's status was written (or failed with the connection). An
	// MO's work starts there, not in the handler, so that no reply to it
	// goes out before the SMSC can have our resp: else a crash between
	// the two makes the SMSC redeliver an MO already answered, possibly
	// after the subscriber's next one, when nothing tells it from a new
	// message.
	Answered func()
}

// IsReceipt reports whether d is a delivery receipt.
func (d *Deliver) IsReceipt() bool { return d.Receipt != nil }

// inbound is what the reader hands a worker: one PDU's worth.
type inbound struct {
	c      *conn
	seq    uint32
	dataSM bool
	sm     *pduio.SM
}

// toPart turns one deliver_sm/data_sm into a reassembler part and the
// Deliver skeleton. bad is true when the UDH does not parse.
func toPart(sm *pduio.SM, dataSM bool) (d *Deliver, p smstext.Part, bad bool) {
	d = &Deliver{
		Source:      Address{Addr: sm.Source, TON: sm.SourceTON, NPI: sm.SourceNPI},
		Dest:        Address{Addr: sm.Dest, TON: sm.DestTON, NPI: sm.DestNPI},
		ServiceType: sm.ServiceType, ESMClass: sm.ESMClass, ProtocolID: sm.ProtocolID,
		DataCoding: sm.DataCoding, DataSM: dataSM, Parts: 1,
	}
	data := sm.ShortMessage
	if payload, ok := sm.TLVs[pduio.TagMessagePayload]; ok && len(data) == 0 {
		data = payload // message_payload may carry the UDH too (problem #6)
	}
	p = smstext.Part{Source: sm.Source, Destination: sm.Dest, DataCoding: sm.DataCoding, Data: data}
	if sm.ESMClass&pduio.ESMUDHI != 0 {
		h, rest, err := smstext.ParseUDH(data)
		if err != nil {
			return d, p, true
		}
		p.Data = rest
		if h.Concat != nil {
			p.Concat = *h.Concat
		}
		return d, p, false
	}
	if c, ok := sarConcat(sm); ok {
		p.Concat = c
	}
	return d, p, false
}

// sarConcat reads the SAR TLVs. sar_msg_ref_num is 2 octets by the spec;
// a 1-octet value (as go-smpp writes an int, problem #10) is accepted too.
func sarConcat(sm *pduio.SM) (smstext.Concat, bool) {
	ref, ok1 := sm.TLVs[pduio.TagSarMsgRefNum]
	tot, ok2 := sm.TLVs[pduio.TagSarTotalSegments]
	seq, ok3 := sm.TLVs[pduio.TagSarSegmentSeqnum]
	if !ok1 || !ok2 || !ok3 || len(tot) != 1 || len(seq) != 1 {
		return smstext.Concat{}, false
	}
	var c smstext.Concat
	switch len(ref) {
	case 1:
		c.Ref = uint16(ref[0])
	case 2:
		c.Ref = uint16(ref[0])<<8 | uint16(ref[1])
	default:
		return smstext.Concat{}, false
	}
	c.Total, c.Seq = tot[0], seq[0]
	return c, true
}

// complete fills d from a reassembled message.
func complete(d *Deliver, m *smstext.Message) {
	d.Data, d.Parts = m.Data, m.Parts
	d.DataCoding = m.DataCoding
	if m.DecodeErr != nil {
		d.Binary = true
		return
	}
	d.Text = m.Text
}

func isBinaryErr(err error) bool {
	return errors.Is(err, smstext.ErrBinary) || errors.Is(err, smstext.ErrUnknownCoding)
}

// Mask hides the middle of a phone number for logs (smstext.Mask):
// "13800138000" becomes "138****8000".
func Mask(number string) string { return smstext.Mask(number) }
