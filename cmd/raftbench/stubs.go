package main

import "github.com/spf13/cobra"

func newSweepCmd() *cobra.Command   { return &cobra.Command{Use: "sweep"} }
func newCompareCmd() *cobra.Command { return &cobra.Command{Use: "compare"} }
func newTuneCmd() *cobra.Command    { return &cobra.Command{Use: "tune"} }
