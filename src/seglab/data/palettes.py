"""Class names and standard colours of the public datasets seglab reads."""

# Oxford-IIIT Pet trimaps, from the dataset's own README: 1 foreground, 2 background, 3 not classified.
OXFORD_TRIMAP = {1: "pet", 2: "background", 3: "border"}

# CamVid, SegNet version: 11 classes; value 11 is void (ignored).
CAMVID = (
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)),
    ("road", (128, 64, 128)), ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)),
    ("sign_symbol", (192, 128, 128)), ("fence", (64, 64, 128)), ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)),
)
CAMVID_VOID = 11

# Cityscapes colour coding (cityscapesScripts labels.py): the 19 training classes ...
CITYSCAPES = (
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
    ("traffic_light", (250, 170, 30)), ("traffic_sign", (220, 220, 0)), ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)), ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)), ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)),
)
# ... and the colours of its void labels (unlabeled, dynamic, ground, parking, rail track,
# guard rail, bridge, tunnel, caravan, trailer): known colours that belong to no training class.
CITYSCAPES_VOID = (
    (0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140),
    (180, 165, 180), (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110),
)
