"""Built-in word lists for the synthetic tasks (no downloads)."""

# Common, single-token-ish English nouns: the keys of the kv-short task.
COMMON_WORDS = """
apple river window garden pencil candle bottle mirror ladder blanket basket bucket
button camera carpet castle cheese cherry circle closet cloud coffee collar copper
cotton cradle dagger desert dinner doctor dragon drawer engine falcon farmer feather
finger forest fossil fountain friend frost galaxy garlic ginger glove goblet granite
guitar hammer harbor helmet honey island jacket jungle kettle kitten lantern lemon
letter lizard magnet marble meadow melon monkey motor muffin napkin needle number
ocean onion orange oyster paddle palace panda parrot pepper piano pillow pirate planet
pocket potato puzzle rabbit radio rocket saddle salmon sandal shadow shovel silver
singer sister socket spider spoon statue stone summer sunset table tablet teapot
temple tiger timber tomato tower trumpet tunnel turtle valley velvet violin wagon
walnut wallet winter wizard yogurt zebra anchor arrow badge banner barrel beacon
bishop blossom bridge bronze cabin canyon cactus carrot cedar chimney clover cobalt
comet coral cousin crystal cupboard dolphin donkey eagle elbow emerald falcon fiddle
flute forge fortune gallery giant glacier goose grape harvest hazel hermit hollow
hornet icicle ivory jelly jewel kayak kernel knight lagoon lemur lily linen lobster
locket lotus maple marsh meteor mitten moose mosaic mustard nectar nickel noodle
oasis olive orchid otter owl pantry pearl pebble pelican pepper pickle pigeon pine
plum pony prairie pumpkin quartz quill raven reef ribbon robin ruby saffron sapphire
scarf seal shell sierra skunk sled sparrow spruce squid stable storm sugar swan
thistle thunder tulip tundra umbrella unicorn vapor vase walrus wheat whistle willow
wolf wren yarn acorn alley almond antler apron attic bagel bamboo banjo beetle biscuit
bison bramble brick brook buffalo bugle cable canoe cargo cashew cello chalk chapel
cider cobra compass cookie crane crater cricket crown cymbal daisy denim diamond
dune easel ember fabric fern ferry flannel fjord garnet gecko geyser gravel gull
hamster hatchet heron hinge igloo iris jade jasmine juniper kiwi koala ladle larch
legend llama lynx mango mantis meerkat mint moth nutmeg oak opal orbit paprika
parsley peach peony pewter pinecone plank poppy puffin quail radish raft raisin
rattle reed rhubarb rudder sage salsa satchel scooter shrimp slate sloth spinach
sponge squash sunflower tapir thimble toffee topaz torch trolley trout tuba tuna
turnip vanilla vulture waffle wasp weasel yak
""".split()

# Deduplicate, keep order: the list above is edited by hand.
COMMON_WORDS = list(dict.fromkeys(COMMON_WORDS))

CITIES = [
    "Lisbon", "Oslo", "Nairobi", "Osaka", "Denver", "Toronto", "Melbourne", "Cairo",
    "Santiago", "Hanoi", "Krakow", "Dublin", "Seville", "Montreal", "Bangalore",
    "Auckland", "Helsinki", "Marseille", "Istanbul", "Lima", "Seattle", "Vienna",
    "Edinburgh", "Casablanca", "Manila", "Porto", "Zurich", "Austin", "Busan", "Accra",
]

COUNTRIES = [
    "Portugal", "Norway", "Kenya", "Japan", "Canada", "Brazil", "Egypt", "Chile",
    "Vietnam", "Poland", "Ireland", "Spain", "India", "Finland", "Mexico", "Greece",
]

LANGUAGES = ["French", "German", "Spanish", "Italian", "Japanese", "Portuguese",
             "Dutch", "Swedish", "Korean", "Turkish"]

CURRENCIES = ["EUR", "USD", "JPY", "GBP", "CHF", "CAD", "AUD", "SEK", "NOK", "INR"]
