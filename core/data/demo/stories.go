package demo

import (
	"io"
	"strings"
)

// A character: a name, what it is, and its pronouns.
type character struct {
	name, kind string
	she        bool
}

var girls = []string{"Lily", "Mia", "Emma", "Sara", "Anna", "Lucy", "Zoe", "Ella", "Ruby", "Nora", "Amy", "Maya", "Rosa", "Ivy", "Jenny", "Kate", "Lena", "Molly", "Daisy", "Hanna", "Alice", "Clara", "Fatima", "Grace", "Julia", "Mei", "Olivia", "Priya", "Sophie", "Yuki"}
var boys = []string{"Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Finn", "Noah", "Oscar", "Hugo", "Dan", "Eli", "Jake", "Luke", "Omar", "Pete", "Ravi", "Theo", "Bob", "Adam", "Carlos", "David", "Felix", "Henry", "Ivan", "Kenji", "Milo", "Paul", "Sami"}

var childKinds = []string{"little girl", "little boy", "girl", "boy"}
var animalKinds = []string{"puppy", "kitten", "bunny", "bear", "fox", "duck", "mouse", "frog", "pig", "lamb", "owl", "squirrel", "turtle", "hedgehog", "horse", "goat", "penguin", "lion", "monkey", "elephant", "dragon", "robot"}
var storyAdjs = []string{"little", "kind", "curious", "happy", "brave", "shy", "small", "clever", "funny", "gentle", "busy", "playful", "cheerful", "quiet", "friendly", "sleepy", "silly", "smart", "tiny", "young", "lively"}

// helpers: someone who may come to help, with pronoun.
type helperKind struct {
	phrase string // "{his} mom"
	she    bool
}

var relatives = []helperKind{
	{"{his} mom", true}, {"{his} dad", false}, {"{his} grandma", true}, {"{his} grandpa", false},
	{"{his} big sister", true}, {"{his} big brother", false}, {"{his} teacher", true}, {"an old neighbor", false},
	{"{his} aunt", true}, {"{his} uncle", false},
}

var places = []string{"park", "forest", "garden", "beach", "farm", "village", "meadow", "river", "hill", "lake", "town", "zoo", "library", "playground", "field", "market", "school", "woods", "pond", "valley", "harbor", "orchard", "camp", "island"}
var homes = []string{"in a small house near the {place}", "in a big yellow house", "in a little house by the {place}", "with {his} family in a quiet town", "in a cozy home at the edge of the {place}", "in a tall blue house", "on a farm with many animals", "in a tiny house under a big tree"}
var hobbies = []string{"play outside", "sing songs", "draw pictures", "read books", "run and jump", "help {his} mom in the kitchen", "look at the stars", "play with {his} friends", "build things with blocks", "dance in the sun", "collect pretty rocks", "watch the birds", "splash in puddles", "climb trees", "paint with bright colors", "tell funny jokes"}
var openings = []string{"Once upon a time", "One day", "One sunny morning", "Long ago", "One bright day", "On a warm summer day", "One cold winter morning", "One rainy afternoon", "In a land far away", "Once", "Not long ago", "One spring day", "One quiet evening", "On a snowy day", "A long time ago", "One windy autumn day"}
var colors = []string{"red", "blue", "green", "yellow", "pink", "purple", "orange", "white", "brown", "shiny", "big", "small", "new", "old"}
var sadFeels = []string{"sad", "upset", "worried", "scared", "unhappy", "sad and lonely", "very sad"}
var happyFeels = []string{"happy", "very happy", "glad", "proud", "so happy", "excited", "full of joy"}
var settings = []string{
	"The sun was shining, and the birds were singing.",
	"The sky was [blue|grey|full of white clouds], and the air was [warm|cool|fresh].",
	"[Outside|That day], the [leaves were orange and red|flowers were in bloom|snow was soft and white|grass was wet with rain].",
	"{He} had [a red hat|big brown eyes|a long fluffy tail|curly hair|a loud laugh|many friends].",
	"{His} best friend was a [cat|dog|parrot|goldfish|rabbit] called [Buddy|Coco|Pip|Sunny|Bubbles|Ziggy].",
	"Every [morning|evening], {he} [ate porridge|drank warm milk|waved at the mailman|fed the ducks] before [school|bed|going out].",
}
var numbers = []string{"two", "three", "four", "five", "six", "seven"}

// plot is one story shape: want -> problem -> help -> resolution. Each
// field holds alternatives; {obj} is chosen from objs.
type plot struct {
	objs     []string // noun phrases without article, e.g. "kite"
	places   []string // where it happens, if the plot needs a kind of place
	want     []string
	problem  []string
	idea     []string // how the hero solves it alone
	help     []string // how the helper solves it ({helper} / {shehe})
	end      []string
	lesson   []string
	exclaims []string
}

var plots = []plot{
	{ // lost toy
		objs:     []string{"ball", "teddy bear", "toy car", "doll", "kite", "little boat", "toy robot", "yo-yo"},
		want:     []string{"{He} [loved|liked] {his} {color} {obj} more than anything.", "{Name} had {acolor} {obj}. It was {his} favorite toy.", "{Name} got {acolor} {obj} for {his} birthday."},
		problem:  []string{"One day, {name} took the {obj} to the {place}. [After playing for a long time|When it was time to go home], {he} could not find it [anywhere|at all].", "But when {name} went to the {place}, the {obj} [fell into a deep hole|rolled under a big bush|was lost in the tall grass].", "Then a strong wind came, and the {obj} [was gone|flew far away]."},
		idea:     []string{"{Name} took a deep breath and looked [under every bush|behind every tree|very carefully]. At last, {he} saw something {color} in the grass. It was the {obj}!"},
		help:     []string{"{Hname} [looked under the bushes|looked behind the big tree|walked all around the {place}] with {name}. Soon {shehe} found the {obj} [under a pile of leaves|next to a rock|in the tall grass].", "{Hname} said, \"Let's look together.\" They searched and searched. Then {name} saw the {obj} [behind a bench|near the water|under a flower]."},
		end:      []string{"{Name} hugged the {obj} and smiled.", "{Name} held the {obj} tight and did not lose it again.", "From then on, {name} kept the {obj} in a safe place."},
		lesson:   []string{"{Name} learned to take good care of {his} things.", "It is good to look carefully and not give up.", ""},
		exclaims: []string{"Where is my {obj}?", "I lost my {obj}!", "Oh no, my {obj} is gone!"},
	},
	{ // stuck kite / tree
		objs:     []string{"kite", "hat", "ball", "balloon", "scarf"},
		want:     []string{"{Name} wanted to play with {his} {color} {obj} at the {place}.", "It was a windy day, and {name} wanted to fly {his} {color} {obj}.", "{Name} [ran|went] to the {place} with {his} new {obj}."},
		problem:  []string{"But the wind [blew very hard|was too strong], and the {obj} got stuck in a tall tree.", "Suddenly, the {obj} flew up and landed on the roof of a [shed|barn|house].", "The {obj} went up, up, up, and got caught on a high branch."},
		idea:     []string{"{Name} had an idea. {He} found a long stick and pulled the {obj} down.", "{Name} thought for a moment. Then {he} jumped as high as {he} could and got the {obj} back."},
		help:     []string{"{Hname} was tall. {Shehe} reached up and got the {obj} down.", "{Hname} brought a ladder, climbed up slowly and gave the {obj} back to {name}.", "{Hname} found a long stick and [gently|carefully] pushed the {obj} off the branch."},
		end:      []string{"{Name} played with the {obj} all afternoon.", "{Name} was careful with the {obj} after that.", "They laughed and played together until the sun went down."},
		lesson:   []string{"Friends help each other when things go wrong.", "{Name} learned that it is okay to ask for help.", ""},
		exclaims: []string{"My {obj} is stuck!", "I can't reach it!", "How will I get it down?"},
	},
	{ // baking
		objs:     []string{"cake", "pie", "cookies", "bread", "muffins", "soup"},
		want:     []string{"{Name} wanted to make {obj} for {his} [mom|dad|grandma|friend].", "It was a special day, so {name} decided to make {obj}.", "{Name} was hungry and wanted some {obj}."},
		problem:  []string{"But there was no [sugar|flour|milk|butter] in the kitchen.", "{Name} mixed everything, but the {obj} [did not taste good|burned a little in the oven|fell on the floor].", "{Name} did not know how to make {obj}."},
		idea:     []string{"{Name} went to the market with a few coins and bought what {he} needed. Then {he} tried again.", "{Name} read an old book of recipes and tried again, slowly and carefully."},
		help:     []string{"{Hname} showed {name} how to mix the [flour|batter] and how long to wait.", "{Hname} said, \"Let's make it together.\" They mixed and stirred and waited.", "{Hname} gave {name} some [sugar|flour|milk] and helped {him} in the kitchen."},
		end:      []string{"The {obj} [smelled sweet|was warm and soft|tasted very good]. Everyone ate some and said, \"Yum!\"", "Soon the {obj} was ready, and they shared it at the table."},
		lesson:   []string{"{Name} learned that trying again makes things better.", "Sharing food with people you love is the best.", ""},
		exclaims: []string{"My {obj} is ruined!", "What can I do now?", "I wanted it to be perfect!"},
	},
	{ // lost way
		objs:     []string{"path", "road", "way"},
		places:   []string{"forest", "woods", "hills", "big park", "mountains", "jungle"},
		want:     []string{"{Name} wanted to see the [biggest tree|prettiest flowers|old bridge|tall waterfall] in the {place}.", "{Name} went for a walk in the {place} to find [berries|mushrooms|flowers|pretty stones]."},
		problem:  []string{"{Name} walked and walked. Soon it was getting dark, and {he} could not find the {obj} home.", "After a while, all the trees looked the same. {Name} was lost."},
		idea:     []string{"{Name} remembered what {his} dad said: follow the river. {He} followed the water and soon saw {his} house.", "{Name} saw the lights of the town far away and walked toward them until {he} was home."},
		help:     []string{"{Hname} said, \"I know the {obj}.\" {Shehe} walked with {name} all the way home.", "{Hname} held {name}'s hand and showed {him} the {obj} back home."},
		end:      []string{"At home, {name} had a warm dinner and went to bed.", "{Name} was home at last, safe and warm."},
		lesson:   []string{"Next time, {name} would stay on the {obj}.", "It is smart to tell someone where you are going.", ""},
		exclaims: []string{"Where am I?", "I want to go home!", "Which way is home?"},
	},
	{ // new friend / sharing
		objs:     []string{"swing", "slide", "sandbox", "bike", "crayons", "blocks"},
		want:     []string{"{Name} wanted to play on the {obj} at the {place}.", "At the {place}, {name} saw {acolor} {obj} and wanted to play with it."},
		problem:  []string{"But another [kid|child], {other}, was already [playing there|using it]. {Name} felt [angry|grumpy|sad] and said, \"It's mine!\"", "But {other} wanted the {obj} too, and they started to argue."},
		idea:     []string{"Then {name} had an idea. \"Let's take turns,\" {he} said. {Other} smiled and said, \"Okay!\""},
		help:     []string{"{Hname} came over and said, \"Why don't you share? You can take turns.\" {Name} and {other} tried it.", "{Hname} said softly, \"Playing together is more fun than playing alone.\""},
		end:      []string{"{Name} and {other} played together all day. They became best friends.", "Soon {name} and {other} were laughing together on the {obj}."},
		lesson:   []string{"Sharing makes everyone happy.", "{Name} learned that friends are better than toys.", ""},
		exclaims: []string{"I want the {obj}!", "It's my turn!", "That's not fair!"},
	},
	{ // hurt animal
		objs:     []string{"bird", "kitten", "puppy", "duckling", "rabbit", "squirrel"},
		want:     []string{"{Name} was walking in the {place} when {he} heard a small sound.", "One day, {name} found a little {obj} near the {place}."},
		problem:  []string{"The {obj} was [hurt|cold|hungry|scared] and could not [walk|fly|find its mother].", "The poor {obj} had a hurt leg and was crying."},
		idea:     []string{"{Name} [gently|carefully] picked up the {obj} and gave it some water and food. {He} made a soft bed for it in a box."},
		help:     []string{"{Hname} knew what to do. {Shehe} [wrapped the {obj} in a warm towel|put a small bandage on its leg] and gave it some food.", "{Hname} and {name} took the {obj} to the animal doctor, who made it better."},
		end:      []string{"After a few days, the {obj} was strong again. {Name} waved goodbye as it went back to its family.", "The {obj} got better and became {name}'s friend."},
		lesson:   []string{"Being kind to animals is important.", "{Name} felt warm inside because {he} helped.", ""},
		exclaims: []string{"Poor little {obj}!", "Are you okay?", "We have to help it!"},
	},
	{ // garden / rain
		objs:     []string{"flowers", "tomatoes", "carrots", "sunflowers", "beans", "peas"},
		want:     []string{"{Name} planted {obj} in the garden and wanted them to grow big.", "{Name} wanted to grow {obj} in the garden."},
		problem:  []string{"But it did not rain for many days, and the {obj} [looked dry and weak|started to droop].", "Then some hungry birds came and tried to eat the {obj}."},
		idea:     []string{"{Name} got a watering can and watered the {obj} every morning.", "{Name} made a funny scarecrow out of old clothes and put it in the garden."},
		help:     []string{"{Hname} showed {name} how to water the {obj} every day.", "{Hname} helped {name} build a little fence around the {obj}."},
		end:      []string{"Soon the {obj} grew tall and strong. {Name} was so proud.", "At the end of the summer, there were many {obj} in the garden."},
		lesson:   []string{"Good things take time and care.", "{Name} learned to be patient.", ""},
		exclaims: []string{"My {obj} need help!", "Please grow!", "What is wrong with my {obj}?"},
	},
	{ // fear of the dark / storm
		objs:     []string{"storm", "dark", "thunder", "big dog next door", "deep water"},
		want:     []string{"{Name} wanted to be brave.", "{Name} wanted to [sleep in {his} own room|swim in the lake|walk to school alone]."},
		problem:  []string{"But {name} was afraid of the {obj}. [At night|When the sky was grey], {he} [hid under the blanket|could not sleep|started to shake].", "Then came the {obj}, and {name} felt very small."},
		idea:     []string{"{Name} took a deep breath and counted to ten. The {obj} was not so scary after all.", "{Name} sang {his} favorite song, and soon {he} did not feel scared."},
		help:     []string{"{Hname} sat next to {name} and said, \"I was scared too when I was little. But you are brave.\"", "{Hname} gave {name} a big hug and a little lamp."},
		end:      []string{"After that night, {name} was not afraid of the {obj} anymore.", "{Name} smiled. {He} felt brave and strong."},
		lesson:   []string{"Being brave does not mean you are never scared.", "Everyone is scared sometimes, and that is okay.", ""},
		exclaims: []string{"I'm scared!", "I don't like the {obj}!", "Please stay with me!"},
	},
	{ // building
		objs:     []string{"sand castle", "tree house", "snowman", "tower of blocks", "birdhouse", "paper boat"},
		want:     []string{"{Name} wanted to build a big {obj}.", "{Name} and {his} friend {other} wanted to make the best {obj} ever."},
		problem:  []string{"But every time the {obj} was almost done, it [fell down|broke|washed away].", "Then a [wave|dog|gust of wind] came and knocked the {obj} over."},
		idea:     []string{"{Name} thought hard. {He} made the bottom wider and stronger, and tried again.", "{He} started again, one piece at a time, and made it stronger."},
		help:     []string{"{Hname} showed {name} how to make the {obj} strong.", "{Hname} said, \"Let's try again, together.\" They worked side by side."},
		end:      []string{"At last, the {obj} stood tall. It was the best {obj} {name} had ever seen.", "When they finished, the {obj} was big and beautiful."},
		lesson:   []string{"If at first you don't succeed, try again.", "Working together makes hard things easy.", ""},
		exclaims: []string{"My {obj} fell down!", "Not again!", "This is too hard!"},
	},
	{ // counting / market
		objs:     []string{"apples", "oranges", "eggs", "pears", "plums", "carrots"},
		want:     []string{"{His} mom asked {name} to buy {num} {obj} at the market.", "{Name} went to the market to get {num} {obj} for dinner."},
		problem:  []string{"But on the way home, {name} dropped the bag, and the {obj} rolled everywhere.", "At the market, {name} forgot how many {obj} to buy."},
		idea:     []string{"{Name} picked up the {obj} one by one and counted them. All {num} were there!", "{Name} remembered the list in {his} pocket. It said {num} {obj}."},
		help:     []string{"{Hname} helped {name} pick up all the {obj} and count them.", "{Hname} smiled and said, \"Your mom said {num} {obj}, I heard her.\""},
		end:      []string{"{Name} came home with {num} {obj}, and {his} mom said, \"Well done!\"", "That night they had a yummy dinner."},
		lesson:   []string{"{Name} felt proud to be a good helper.", "Counting is useful.", ""},
		exclaims: []string{"My {obj}!", "Oh no, I forgot!", "How many did I need?"},
	},
	{ // birthday gift
		objs:     []string{"card", "drawing", "necklace", "song", "cake", "flower crown"},
		want:     []string{"It was almost {other}'s birthday, and {name} wanted to give {other} a special {obj}.", "{Name} wanted to make a {obj} for {his} [mom|dad|friend {other}]'s birthday."},
		problem:  []string{"But {name} had no money to buy a present.", "{Name} tried to make the {obj}, but it [did not look nice|came out crooked|broke in two]. {He} wanted to throw it away."},
		idea:     []string{"{Name} decided to make the {obj} with {his} own hands, with love. It took all afternoon.", "{Name} tried again, slowly this time, and added [glitter|a bright ribbon|little stars]."},
		help:     []string{"{Hname} said, \"A gift made with love is the best gift of all.\" {Shehe} helped {name} finish the {obj}.", "{Hname} gave {name} some [paper|paint|ribbon|beads], and they made the {obj} together."},
		end:      []string{"At the party, {name} gave the {obj} as a present. Everyone said it was wonderful.", "When {name} gave the {obj}, there was a big smile and a warm hug."},
		lesson:   []string{"The best gifts come from the heart.", "{Name} learned that love matters more than money.", ""},
		exclaims: []string{"It is not good enough!", "What can I give?", "I ruined it!"},
	},
	{ // race
		objs:     []string{"race", "swimming race", "bike race", "sack race"},
		want:     []string{"There was a big {obj} at the {place}, and {name} wanted to win.", "{Name} practiced every day for the {obj}."},
		problem:  []string{"During the {obj}, {name} [fell down|slipped in the mud|got very tired]. The others were far ahead.", "On the day of the {obj}, {name} saw that {other} had fallen and was crying."},
		idea:     []string{"{Name} got up and kept going. {He} did not come first, but {he} finished the {obj}.", "{Name} stopped to help {other} up, and they crossed the line together."},
		help:     []string{"{Hname} cheered from the side: \"You can do it, {name}!\" {Name} stood up and ran again.", "{Hname} clapped loudly. \"Keep going!\" {shehe} called."},
		end:      []string{"Everyone clapped for {name}.", "{Name} did not win a medal, but {he} felt like a winner."},
		lesson:   []string{"Winning is not everything. Trying your best is what counts.", "Kindness is better than a medal.", ""},
		exclaims: []string{"I can't do it!", "Ouch!", "I am too slow!"},
	},
	{ // lost pet
		objs:     []string{"dog", "cat", "rabbit", "parrot", "hamster", "goldfish"},
		want:     []string{"{Name} had a pet {obj} and played with it every day.", "{Name}'s pet {obj} was {his} best friend."},
		problem:  []string{"One morning, the {obj} was not in its bed. {Name} looked everywhere, but the {obj} was gone.", "The door was open, and the {obj} ran out to the {place}."},
		idea:     []string{"{Name} made signs with a picture of the {obj} and put them all over town. Soon a lady called and said she had found it.", "{Name} took the {obj}'s favorite treat and called its name. Soon the {obj} came running back."},
		help:     []string{"{Hname} helped {name} look in the {place}. They called and called, and at last they heard a small sound. The {obj} was hiding under a bench.", "{Hname} said, \"Pets like to hide in warm places.\" They looked in the barn, and there was the {obj}, fast asleep."},
		end:      []string{"{Name} hugged the {obj} and took it home.", "That night, the {obj} slept next to {name}'s bed."},
		lesson:   []string{"{Name} always closed the door after that.", "", "Friends are there when you need them."},
		exclaims: []string{"Where is my {obj}?", "Come back!", "I miss my {obj}!"},
	},
}

// storyVars sets up the hero, helper and slots of one story.
func storyVars(r *rng) (map[string]string, character) {
	var hero character
	if r.chance(70) {
		hero.she = r.chance(50)
		if hero.she {
			hero.name = pick(r, girls)
		} else {
			hero.name = pick(r, boys)
		}
		hero.kind = pick(r, childKinds)
		if hero.she {
			hero.kind = strings.Replace(hero.kind, "boy", "girl", 1)
		} else {
			hero.kind = strings.Replace(hero.kind, "girl", "boy", 1)
		}
	} else {
		hero.she = r.chance(50)
		if hero.she {
			hero.name = pick(r, girls)
		} else {
			hero.name = pick(r, boys)
		}
		hero.kind = pick(r, animalKinds)
	}
	v := map[string]string{"name": hero.name, "kind": hero.kind, "place": pick(r, places), "color": pick(r, colors), "num": pick(r, numbers)}
	v["acolor"] = article(v["color"]) + " " + v["color"]
	if hero.she {
		v["he"], v["him"], v["his"] = "she", "her", "her"
	} else {
		v["he"], v["him"], v["his"] = "he", "him", "his"
	}
	// The other child, never the hero.
	for {
		o := pick(r, append(append([]string(nil), girls...), boys...))
		if o != hero.name {
			v["other"] = o
			break
		}
	}
	// The helper: a relative, or a named friend.
	var hs bool
	if r.chance(55) {
		h := pick(r, relatives)
		v["helper"] = subst(h.phrase, v)
		hs = h.she
	} else {
		hs = r.chance(50)
		var n string
		for n == "" || n == hero.name {
			if hs {
				n = pick(r, girls)
			} else {
				n = pick(r, boys)
			}
		}
		if r.chance(50) {
			v["helper"] = "{his} friend " + n
		} else {
			v["helper"] = n + ", a " + pick(r, []string{"kind", "friendly", "clever", "tall", "wise", "nice"}) + " " + pick(r, append([]string{"girl", "boy"}, animalKinds...))
			if !hs && strings.HasSuffix(v["helper"], "girl") {
				v["helper"] = strings.TrimSuffix(v["helper"], "girl") + "boy"
			} else if hs && strings.HasSuffix(v["helper"], "boy") {
				v["helper"] = strings.TrimSuffix(v["helper"], "boy") + "girl"
			}
		}
		v["helper"] = subst(v["helper"], v)
		if strings.Contains(v["helper"], ",") {
			v["helper"] += "," // "Leo, a wise boy, came by."
		}
	}
	if hs {
		v["shehe"], v["herhim"] = "she", "her"
	} else {
		v["shehe"], v["herhim"] = "he", "him"
	}
	v["thanks"] = ""
	v["hname"] = v["helper"]
	if sh := shortHelper(v["helper"]); sh != "" {
		v["thanks"] = ", " + sh
		v["hname"] = sh
	}
	return v, hero
}

// article returns "an" before a vowel sound (for the words used here), else "a".
func article(w string) string {
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}

// shortHelper turns "her friend Sam" into "Sam", "Tim, a kind fox" into
// "Tim", and "his mom" into "Mom" for dialogue.
func shortHelper(h string) string {
	if i := strings.IndexByte(h, ','); i > 0 {
		return h[:i]
	}
	if i := strings.LastIndex(h, "friend "); i >= 0 {
		return h[i+len("friend "):]
	}
	for _, w := range []string{"mom", "dad", "grandma", "grandpa"} {
		if strings.HasSuffix(h, w) {
			return capitalise(w)
		}
	}
	return ""
}

// story writes one story: opening, want, problem with a reaction, help or
// an idea, resolution, and sometimes a lesson. Paragraphs are separated by
// single newlines; stories by blank lines.
func story(r *rng) string {
	v, _ := storyVars(r)
	p := pick(r, plots)
	v["obj"] = pick(r, p.objs)
	if len(p.places) > 0 {
		v["place"] = pick(r, p.places)
	}
	v["feel"] = pick(r, sadFeels)
	v["joy"] = pick(r, happyFeels)
	v["home"] = pick(r, places)
	v["hobby"] = expand(r, pick(r, hobbies), v)
	var paras []string
	var s []string
	say := func(t string) { s = append(s, expand(r, t, v)) }
	para := func() {
		if len(s) > 0 {
			paras = append(paras, strings.Join(s, " "))
			s = nil
		}
	}

	// Opening.
	v["adj"] = pick(r, storyAdjs)
	say(pick(r, openings) + ", there [was|lived] a {adj} {kind} named {name}.")
	if r.chance(60) {
		say("{He} lived " + expand(r, pick(r, homes), v) + ".")
	}
	if r.chance(35) {
		say(pick(r, settings))
	}
	if r.chance(70) {
		say("{Name} [loved|liked] to {hobby}[| every day| with {his} friends| more than anything].")
	}
	para()

	// Want and problem.
	say(pick(r, p.want))
	if r.chance(40) {
		say(pick(r, []string{"{He} was [so|very] excited.", "{He} smiled a big smile.", "\"This will be [fun|great|the best day ever]!\" {name} said.", "{He} could not wait."}))
	}
	say(pick(r, p.problem))
	if r.chance(80) {
		say(pick(r, []string{
			"{Name} felt {feel}.",
			"\"" + pick(r, p.exclaims) + "\" [cried|said|shouted] {name}.",
			"{Name} [sat down|stood still] and [started to cry|felt {feel}].",
			"\"Oh no!\" said {name}. \"" + pick(r, p.exclaims) + "\"",
		}))
	}
	para()

	// Help or an idea.
	if r.chance(70) {
		say(pick(r, []string{"Just then, {helper} came by.", "[Then|Soon], {helper} [saw|heard] {name}.", "{Helper} [was nearby|came over]."}))
		if r.chance(75) {
			say(pick(r, []string{
				"\"Why are you {feel}, {name}?\" asked {hname}.",
				"\"What is wrong?\" {shehe} asked.",
				"\"[Can|Will] you help me?\" asked {name}.",
				"\"Don't [worry|be sad],\" said {shehe}. \"I will help you.\"",
			}))
			if r.chance(50) {
				say("{Name} told {herhim} what happened.")
			}
		}
		say(pick(r, p.help))
		say(pick(r, []string{"\"Thank you{thanks}!\" said {name}[| with a big smile].", "{Name} said, \"Thank you for helping me!\"", "{Name} gave {herhim} a big hug."}))
	} else {
		say(pick(r, []string{"{Name} did not give up.", "{Name} [thought|thought and thought] for a while.", "Then {name} had an idea."}))
		say(pick(r, p.idea))
		if r.chance(40) {
			say("\"[I did it|Yes|Hooray]!\" [said|shouted] {name}.")
		}
	}
	para()

	// Resolution.
	say(pick(r, p.end))
	if r.chance(60) {
		say("{Name} [felt|was] {joy}.")
	}
	if l := pick(r, p.lesson); l != "" && r.chance(60) {
		say(l)
	}
	para()
	return strings.Join(paras, "\n")
}

// WriteStories writes stories separated by blank lines until at least
// bytes bytes are written.
func WriteStories(w io.Writer, seed uint64, bytes int) error {
	r := newRNG(seed, 1)
	n := 0
	for n < bytes {
		s := story(r)
		if n > 0 {
			s = "\n\n" + s
		}
		k, err := io.WriteString(w, s)
		if err != nil {
			return err
		}
		n += k
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// Stories returns about bytes bytes of stories (see WriteStories).
func Stories(seed uint64, bytes int) string {
	var b strings.Builder
	WriteStories(&b, seed, bytes)
	return b.String()
}
