"""Model-input preprocessing: images to f32 [-1, 1], captions to token ids (apart from the datasets,
as big_vision keeps pp/)."""
