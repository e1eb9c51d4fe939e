// Package camera is the first stage of the pipeline: it captures frames from
// a camera, stream, video file or image folder (through OpenCV, gocv v0.25)
// and turns them into model input tensors.
//
// A Camera reads its source on its own goroutine and keeps only the newest
// frame, so a consumer that is slower than the source always gets a recent
// picture; frames it never saw are counted as dropped. The Camera paces
// reads to a target FPS, stamps each frame with a sequence number and a time,
// and reopens a source that fails or stalls, with exponential backoff and
// jitter. Its Stats (state, frames, dropped, reconnects, errors, last error)
// are for the agent to expose.
//
// A Preprocessor converts a frame (BGR) into an RGB or grey tensor of the
// model's size: optional region of interest, then resize-and-centre-crop,
// letterbox or stretch, then uint8, normalised float32 or quantized int8,
// into a buffer the caller owns. For a model trained on smaller images
// padded to its input (PreprocessConfig.Content), the frame goes into that
// centred area only and the border is black, as the padding was. It reuses
// its Mats, so steady-state frames allocate nothing.
//
//	cam, err := camera.Open(ctx, camera.Config{Source: "/dev/video0", FPS: 5})
//	if err != nil { ... }
//	defer cam.Close()
//	pre, err := camera.NewPreprocessor(camera.PreprocessConfig{Width: 224, Height: 224,
//		Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225},
//		Scale: inScale, ZeroPoint: inZeroPoint})
//	if err != nil { ... }
//	defer pre.Close()
//	input := make([]int8, pre.Len())
//	var f camera.Frame
//	defer f.Close()
//	for {
//		if err := cam.Next(ctx, &f); err != nil { ... } // io.EOF: a file ended
//		if err := pre.Int8(f.Mat, input); err != nil { ... }
//		// run the model on input; f.Seq and f.Time identify the frame
//	}
//
// Consumers should depend on a small interface of their own (Next, Stats,
// Snapshot, Close); package cameratest provides a synthetic source with the
// same methods.
//
// # Source strings
//
//	Source                                   Reads
//	0, 1, ...                                V4L2 camera by index (/dev/video0, ...)
//	/dev/video0?width=1280&height=720&fps=30&fourcc=MJPG
//	                                         V4L2 camera by node; options optional
//	file:clip.avi, file:clip.mp4?loop=1      video file (FFmpeg), once or looping
//	clip.avi, /data/clip.mp4                 same, for a path without a prefix
//	images:/data/frames, images:/data/*.png  image folder or glob, in name order;
//	images:/data/*.jpg?loop=1                ?loop=1 starts again at the end
//	/data/frames, /data/*.png                same, for a folder, glob or image path
//	rtsp://user:pass@cam.local:554/stream1   RTSP (FFmpeg)
//	http://cam.local:8080/?action=stream     MJPEG over HTTP (multipart/x-mixed-replace),
//	                                         read in Go; https works too
//	gst:PIPELINE ! appsink                   GStreamer pipeline (must end in appsink)
//
// GStreamer pipelines for board cameras (the CSI cameras of a Raspberry Pi
// and a Jetson cannot be opened by OpenCV directly):
//
//	Raspberry Pi CSI (libcamera; Raspberry Pi OS package gstreamer1.0-libcamera):
//	gst:libcamerasrc ! video/x-raw,width=1280,height=720,framerate=30/1 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1
//
//	Jetson CSI (Argus):
//	gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1
//
//	USB camera sending MJPEG, decoded by GStreamer:
//	gst:v4l2src device=/dev/video0 ! image/jpeg,width=1280,height=720,framerate=30/1 ! jpegdec ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1
//
//	RTSP H.264 with low latency:
//	gst:rtspsrc location=rtsp://cam.local:554/stream1 latency=0 ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1
//
// # Failure and recovery
//
// Open fails at once for a malformed source string, an unsupported scheme, a
// missing or undecodable video file and a folder or glob with no images.
// Cameras and streams are opened on the capture goroutine: one that cannot be
// reached leaves the Camera in StateReconnecting, retrying with backoff, with
// the reason in Stats().LastError. A read that takes longer than ReadTimeout
// counts as a stall and the source is reopened. A read blocked inside OpenCV
// cannot be interrupted; the Camera abandons it, opens the source afresh and
// releases the old connection when the read returns (OpenCV's FFmpeg backend
// gives up after 30 s). For RTSP over TCP, set the environment variable
// OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp".
package camera
