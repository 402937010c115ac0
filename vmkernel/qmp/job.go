package qmp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Job is one of QEMU's background jobs (query-jobs): a snapshot save, load
// or delete, a backup.
type Job struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// CurrentProgress and TotalProgress are in the job's own units (bytes
	// for a backup); TotalProgress may grow as the job learns more.
	CurrentProgress int64  `json:"current-progress"`
	TotalProgress   int64  `json:"total-progress"`
	Error           string `json:"error,omitempty"`
}

// ErrJobGone: the job is not (or no longer) in QEMU's list.
var ErrJobGone = errors.New("qmp: no such job")

// Jobs lists QEMU's jobs.
func (m *Monitor) Jobs(ctx context.Context) ([]Job, error) {
	var jobs []Job
	if err := m.Run(ctx, "query-jobs", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// WaitJob follows the job id until it has concluded, reporting its progress
// as it goes (progress may be nil), then dismisses it and returns its error,
// if it failed. The job must have been started without auto-dismiss (the
// snapshot jobs never are; give a backup "auto-dismiss": false), or its end
// could not be told from its absence. QEMU's job events go to whoever
// watches the VM, so this asks (query-jobs), a little less often the
// longer the job runs.
func (m *Monitor) WaitJob(ctx context.Context, id string, progress func(done, total int64)) error {
	delay := 10 * time.Millisecond
	for {
		jobs, err := m.Jobs(ctx)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		var job *Job
		for i := range jobs {
			if jobs[i].ID == id {
				job = &jobs[i]
			}
		}
		if job == nil {
			return fmt.Errorf("job %s: %w", id, ErrJobGone)
		}
		if progress != nil {
			progress(job.CurrentProgress, job.TotalProgress)
		}
		if job.Status == "concluded" {
			if err := m.Run(ctx, "job-dismiss", map[string]string{"id": id}, nil); err != nil {
				return fmt.Errorf("job %s: dismissing it: %w", id, err)
			}
			if job.Error != "" {
				return fmt.Errorf("job %s (%s): %s", id, job.Type, job.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s (%s, %s): %w", id, job.Type, job.Status, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}
