// A department system on a OneGrid county's bus, in Go with github.com/rabbitmq/amqp091-go:
//
//	onegrid-example publish <event.json>      send one event; prints its id
//	onegrid-example consume <event id> [secs] read its receipt and its work orders
//
// event.json: {"type": "<department>.<event type>", "version": 1, "data": {...}}: the data of
// the AsyncAPI document's example of that message. The environment names the department:
// ONEGRID_TENANT, ONEGRID_DEPARTMENT, ONEGRID_PASSWORD (its broker user's, from onboarding),
// ONEGRID_AMQP_HOST (default localhost:5672).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type settings struct{ tenant, department, user, url string }

func load() settings {
	need := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			fmt.Fprintf(os.Stderr, "set %s (see examples/README.md)\n", name)
			os.Exit(2)
		}
		return v
	}
	s := settings{tenant: need("ONEGRID_TENANT"), department: need("ONEGRID_DEPARTMENT")}
	password := need("ONEGRID_PASSWORD")
	host := os.Getenv("ONEGRID_AMQP_HOST")
	if host == "" {
		host = "localhost:5672"
	}
	s.user = s.tenant + "." + s.department // a department speaks only as itself
	// amqp://<user>:<password>@<host>/<vhost>, each part percent-encoded (a vhost "/" is %2F)
	u := url.URL{Scheme: "amqp", User: url.UserPassword(s.user, password), Host: host,
		Path: "/" + s.tenant, RawPath: "/" + url.PathEscape(s.tenant)}
	s.url = u.String()
	return s
}

type event struct {
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Data    json.RawMessage `json:"data"`
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// open connects as the department's broker user and opens a channel.
func open(s settings) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.Dial(s.url)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

func publish(s settings, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if ev.Version == 0 {
		ev.Version = 1
	}
	id := os.Getenv("ONEGRID_EVENT_ID") // unique per source; a resend keeps it
	if id == "" {
		id = newID()
	}
	conn, ch, err := open(s)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	returned := ch.NotifyReturn(make(chan amqp.Return, 1))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = ch.PublishWithContext(ctx, "onegrid.intake", ev.Type, true, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		UserId:       s.user, // RabbitMQ checks it is the connection's user; intake trusts it
		Headers: amqp.Table{
			"ce-specversion": "1.0",
			"ce-id":          id,
			"ce-source":      fmt.Sprintf("/%s/departments/%s/go-example", s.tenant, s.department),
			"ce-type":        ev.Type,
			"ce-time":        time.Now().UTC().Format(time.RFC3339),
			"ce-dataschema":  fmt.Sprintf("urn:onegrid:contract:%s:%d", ev.Type, ev.Version),
			"ce-tenant":      s.tenant,
			"ce-department":  s.department,
		},
		Body: ev.Data,
	})
	if err != nil {
		return err
	}
	select {
	case r := <-returned:
		return fmt.Errorf("unroutable: %s", r.ReplyText)
	case c := <-confirms:
		if !c.Ack {
			return fmt.Errorf("the broker refused the event")
		}
	case <-ctx.Done():
		return fmt.Errorf("no publisher confirm")
	}
	// the confirm: the bus has the event. Whether it became a case is the receipt's to say.
	fmt.Println(id)
	return nil
}

func consume(s settings, eventID string, seconds int) error {
	conn, ch, err := open(s)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.Qos(20, 0, false); err != nil {
		return err
	}
	type delivery struct {
		queue string
		msg   amqp.Delivery
	}
	all := make(chan delivery)
	for _, queue := range []string{"receipts." + s.department, "workorders." + s.department} {
		msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		go func(queue string, msgs <-chan amqp.Delivery) {
			for m := range msgs {
				all <- delivery{queue, m}
			}
		}(queue, msgs)
	}
	wantWorkOrder := os.Getenv("ONEGRID_EXPECT_WORK_ORDER") != "0"
	seen := map[string]bool{} // a redelivered message has the same ce-id: read it once
	workOrderCases := map[string]bool{}
	var receipt map[string]any
	deadline := time.After(time.Duration(seconds) * time.Second)
	for {
		select {
		case d := <-all:
			h := d.msg.Headers
			id, _ := h["ce-id"].(string)
			if !seen[id] {
				seen[id] = true
				var data map[string]any
				if err := json.Unmarshal(d.msg.Body, &data); err != nil {
					return err
				}
				line, _ := json.Marshal(map[string]any{
					"queue": d.queue, "type": h["ce-type"], "id": id, "subject": h["ce-subject"], "data": data,
				})
				fmt.Println(string(line))
				if d.queue == "receipts."+s.department && h["ce-subject"] == eventID {
					receipt = data
				}
				if d.queue == "workorders."+s.department {
					if c, ok := data["case_id"].(string); ok {
						workOrderCases[c] = true
					}
				}
			}
			if err := d.msg.Ack(false); err != nil { // after it is handled: unacked ones come back
				return err
			}
			if receipt != nil {
				c, _ := receipt["case_id"].(string)
				if receipt["outcome"] != "accepted" || !wantWorkOrder || workOrderCases[c] {
					return nil
				}
			}
		case <-deadline:
			return fmt.Errorf("no receipt for %s within %ds", eventID, seconds)
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: onegrid-example publish <event.json> | consume <event id> [seconds]")
		os.Exit(2)
	}
	s := load()
	var err error
	switch os.Args[1] {
	case "publish":
		err = publish(s, os.Args[2])
	case "consume":
		seconds := 30
		if len(os.Args) > 3 {
			if seconds, err = strconv.Atoi(os.Args[3]); err != nil {
				break
			}
		}
		err = consume(s, os.Args[2], seconds)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
