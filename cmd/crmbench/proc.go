package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memStat is a process's memory from /proc (Linux), in bytes.
type memStat struct {
	RSS, Peak  int64 // VmRSS, VmHWM
	Anon, File int64 // RssAnon, RssFile: the parts of VmRSS
	PSS        int64 // Pss of smaps_rollup: a page mapped n times counts 1/n each time
}

// memInfo returns the memory of a process from /proc/<pid>/status and
// /proc/<pid>/smaps_rollup. VmRSS counts a file page once per mapping: the
// SQLite read model is mapped by each reader connection (mmap_size), so the
// same page of it may count several times; Pss counts it once.
func memInfo(pid int) (memStat, error) {
	var m memStat
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	if err := readKB(fmt.Sprintf("/proc/%d/status", pid), fields); err != nil {
		return m, err
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	_ = readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), map[string]*int64{"Pss": &m.PSS}) // optional
	return m, nil
}

// readKB reads the "Key:   123 kB" lines named in fields from a /proc file.
func readKB(path string, fields map[string]*int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		parts := strings.Fields(v) // "123456 kB"
		if len(parts) != 2 || parts[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(parts[0], 10, 64); err == nil {
			*dst = n << 10
		}
	}
	return sc.Err()
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// procCPU returns the CPU time (user + system) a process has used (Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machine describes the host for the report.
type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"goVersion"`
	LoadStart string `json:"loadAverageAtStart"`
	LoadEnd   string `json:"loadAverageAtEnd"`
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
