// Simulation harness around the generated `lif_array` (lifgate.sim).
//
// Hand-written, plain Verilog-2005 (Icarus runs it with -g2005, see sim/runner.py), so that
// stimulus and results move in bulk and cocotb is not woken every clock:
//
// * i_stream is fed from `stim_mem`, loaded with $readmemh from "stim.hex" (written by Python)
//   on an `h_load` strobe, which also resets the read pointer and the LFSR.
// * o_stream beats are written, one line per beat, to "beats.txt" with $fwrite("%h"): the full
//   packed payload, MSB first. `h_open` / `h_close` strobes open and close the file.
// * A 32-bit xorshift LFSR, seeded by `h_lfsr_seed` on `h_load`, makes pseudo-random
//   backpressure: o_stream.ready is low in a cycle when its byte is below `h_ready_thresh`,
//   and the source inserts a gap before a beat when another byte is below `h_gap_thresh`
//   (0 disables either). i_stream.valid, once high, stays high until the transfer.
// * `h_done_seen` latches `done` (cleared by `h_done_clr`), so cocotb can await one edge.
// * With `h_check` set (after reset), the outputs of lif_array are checked for X/Z on every
//   clock (meaningful under Icarus, 4-state); see `h_xcount` below.
// * Waves: under Icarus, `+waves=FILE` dumps everything with $dumpfile/$dumpvars (vvp's -fst
//   flag picks FST); under Verilator, the build has --trace and cocotb's main dumps (VCD).
//
// All files are relative to the simulator's working directory (one per build/test node).

`default_nettype none

module lif_harness #(
    parameter LANES = 4,       // P
    parameter IW = 16,         // input current width
    parameter SW = 16,         // step_width
    parameter GW = 1,          // param_group width
    parameter PW = 8,          // param_data width
    parameter OW = 8,          // o_stream payload width
    parameter STIM_AW = 16     // log2 of the stimulus memory depth (beats)
) (
    input  wire              clk,
    input  wire              rst,
    // passed through to lif_array
    input  wire              param_we,
    input  wire [GW-1:0]     param_group,
    input  wire [PW-1:0]     param_data,
    input  wire [31:0]       noise_seed,
    input  wire [15:0]       noise_gain,
    input  wire              input_en,
    input  wire              clear,
    input  wire              start,
    input  wire [31:0]       steps,
    output wire              busy,
    output wire              done,
    output wire [SW-1:0]     step,
    // harness controls
    input  wire              h_load,
    input  wire [31:0]       h_nbeats,
    input  wire [31:0]       h_lfsr_seed,
    input  wire [7:0]        h_ready_thresh,
    input  wire [7:0]        h_gap_thresh,
    input  wire              h_open,
    input  wire              h_close,
    input  wire              h_done_clr,
    input  wire              h_check,
    output reg               h_done_seen,
    output reg  [31:0]       h_nin,
    output reg  [31:0]       h_nout,
    output reg  [31:0]       h_xcount
);

    localparam IPW = LANES * IW;

    wire            i_valid;
    wire            i_ready;
    wire [IPW-1:0]  i_payload;
    wire            o_valid;
    reg             o_ready;
    wire [OW-1:0]   o_payload;

    lif_array dut (
        .clk(clk),
        .rst(rst),
        .param_we(param_we),
        .param_group(param_group),
        .param_data(param_data),
        .noise_seed(noise_seed),
        .noise_gain(noise_gain),
        .input_en(input_en),
        .clear(clear),
        .start(start),
        .steps(steps),
        .busy(busy),
        .done(done),
        .step(step),
        .i_stream__valid(i_valid),
        .i_stream__ready(i_ready),
        .i_stream__payload(i_payload),
        .o_stream__valid(o_valid),
        .o_stream__ready(o_ready),
        .o_stream__payload(o_payload)
    );

    // Stimulus ---------------------------------------------------------------------------------

    reg [IPW-1:0]     stim_mem [0:(1 << STIM_AW) - 1];
    reg [STIM_AW-1:0] i_ptr;
    reg               i_valid_r;
    reg [31:0]        lfsr;
    wire [31:0]       lfsr_a = lfsr ^ (lfsr << 13);
    wire [31:0]       lfsr_b = lfsr_a ^ (lfsr_a >> 17);
    wire [31:0]       lfsr_next = lfsr_b ^ (lfsr_b << 5);

    assign i_valid = i_valid_r;
    assign i_payload = stim_mem[i_ptr];

    // The beat after this cycle's transfer (if any) exists in the loaded stimulus.
    wire i_fire = i_valid_r & i_ready;
    wire [31:0] i_next = h_nin + {31'd0, i_fire};
    wire i_more = i_next < h_nbeats;

    always @(posedge clk) begin
        if (h_load) begin
            if (h_nbeats != 0)
                $readmemh("stim.hex", stim_mem, 0, h_nbeats - 1);
            i_ptr <= 0;
            i_valid_r <= 1'b0;
            h_nin <= 0;
            lfsr <= (h_lfsr_seed == 0) ? 32'h1 : h_lfsr_seed;
            o_ready <= 1'b0;
        end else begin
            lfsr <= lfsr_next;
            o_ready <= !(lfsr[7:0] < h_ready_thresh);
            if (i_fire) begin
                i_ptr <= i_ptr + 1'b1;
                h_nin <= i_next;
            end
            if (!i_valid_r || i_ready)
                i_valid_r <= i_more && !(lfsr[15:8] < h_gap_thresh);
        end
    end

    // Results ----------------------------------------------------------------------------------

    integer fd = 0;

    always @(posedge clk) begin
        if (h_open) begin
            if (fd != 0) $fclose(fd);
            fd = $fopen("beats.txt", "w");
            if (fd == 0) begin
                $display("lif_harness: cannot open beats.txt");
                $finish;
            end
            h_nout <= 0;
        end else if (o_valid && o_ready) begin
            if (fd != 0) $fwrite(fd, "%h\n", o_payload);
            h_nout <= h_nout + 1;
        end
        if (h_close && fd != 0) begin
            $fclose(fd);
            fd = 0;
        end
    end

    always @(posedge clk) begin
        if (h_done_clr)
            h_done_seen <= 1'b0;
        else if (done)
            h_done_seen <= 1'b1;
    end

    // X/Z check (4-state simulators only): after reset no output of lif_array may be X or Z,
    // the payload included, whatever o_stream.valid says. `h_xcount` counts the cycles that
    // break this. The reduction is evaluated once per clock inside the always block, not as a
    // continuous assignment that Icarus would re-evaluate on every glitch of the payload.
    always @(posedge clk) begin
        if (h_check && !rst) begin
            if ((^{busy, done, step, i_ready, o_valid, o_payload}) === 1'bx) begin
                if (h_xcount == 0)
                    $display("lif_harness: X/Z on a lif_array output at %0t: busy=%b done=%b i_ready=%b o_valid=%b step=%h o_payload=%h",
                             $time, busy, done, i_ready, o_valid, step, o_payload);
                h_xcount <= h_xcount + 1;
            end
        end
    end

    // Waves ------------------------------------------------------------------------------------

`ifndef VERILATOR
    reg [8*512-1:0] waves_file;
    initial begin
        if ($value$plusargs("waves=%s", waves_file)) begin
            $dumpfile(waves_file);
            $dumpvars(0, lif_harness);
        end
    end
`endif

    initial begin
        h_done_seen = 1'b0;
        h_nin = 0;
        h_nout = 0;
        h_xcount = 0;
        i_ptr = 0;
        i_valid_r = 1'b0;
        o_ready = 1'b0;
        lfsr = 32'h1;
    end

endmodule

`default_nettype wire
