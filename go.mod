module github.com/raftbench/raftbench

go 1.26
